"""The store's shared SQL expressions, against independent oracles."""

from __future__ import annotations

import duckdb
import h3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.errors import StoreError
from store.sql import h3_parent, quote


@settings(max_examples=200, deadline=None)
@given(
    lat=st.floats(-89.9, 89.9),
    lon=st.floats(-179.9, 179.9),
    res=st.integers(0, 15),
)
def test_h3_parent_in_sql_equals_h3py(lat: float, lon: float, res: int) -> None:
    cell = h3.str_to_int(h3.latlng_to_cell(lat, lon, 15))
    got = duckdb.sql(f"SELECT {h3_parent('h3', res)} FROM (SELECT ?::UBIGINT AS h3)",
                     params=[cell]).fetchall()  # fmt: skip
    assert got[0][0] == h3.str_to_int(h3.cell_to_parent(h3.int_to_str(cell), res))


def test_identifiers_outside_the_allow_list_shape_are_refused() -> None:
    assert quote("colonia") == '"colonia"'
    for bad in ('x"; DROP TABLE t; --', "a b", "h3)"):
        with pytest.raises(StoreError):
            quote(bad)
    with pytest.raises(StoreError):
        h3_parent("h3", 16)
