"""Filters compile to SQL with bound values only."""

from __future__ import annotations

from datetime import date

import pytest

from geo.types import BBox
from store.filters import FilterError, Filters
from store.sql import quote


def test_every_value_is_a_parameter() -> None:
    f = Filters(
        start=date(2023, 1, 1), end=date(2024, 1, 1), categories=("robo_transeunte",),
        offenses=("x' OR '1'='1",), hour_from=22, hour_to=6, weekdays=(4, 5),
        bbox=BBox(-99.2, 19.38, -99.12, 19.45), within=("colonia", "03-045"),
    )  # fmt: skip
    sql, params = f.where(["colonia"])
    assert "'" not in sql  # no literal in the text
    assert sql.count("?") == len(params) == 13
    assert "(local_hour >= ? OR local_hour < ?)" in sql  # 22 to 6 wraps midnight
    assert '"colonia" = ?' in sql


def test_bad_filters_name_the_parameter() -> None:
    with pytest.raises(FilterError, match="end='2023-01-01': must be after start"):
        Filters(start=date(2023, 1, 1), end=date(2023, 1, 1)).where([])
    with pytest.raises(FilterError) as err:
        Filters(within=("barrio", "1")).where(["colonia"])
    assert err.value.param == "within"
    with pytest.raises(FilterError, match="empty window"):
        Filters(hour_from=3, hour_to=3).where([])


def test_identifiers_are_refused_unless_plain() -> None:
    assert quote("colonia") == '"colonia"'
    with pytest.raises(Exception, match="refusing"):
        quote('colonia" OR 1=1 --')


def test_units(sample_store) -> None:  # type: ignore[no-untyped-def]
    from store.aggregate import Unit

    manifest = sample_store.require_manifest()
    assert Unit.parse("h3:8", manifest).res == 8
    assert Unit.parse("colonia", manifest).layer == "colonia"
    assert Unit.parse("street", manifest).layer == "calles"
    with pytest.raises(FilterError, match="5..12"):
        Unit.parse("h3:4", manifest)
    with pytest.raises(
        FilterError, match="unknown unit; use one of: h3:5..12, colonia, cuadrante, street"
    ):
        Unit.parse("barrio", manifest)


def test_bbox_area_is_bounded() -> None:
    from store.filters import MAX_BBOX_AREA

    state = Filters(bbox=BBox(-99.4, 19.0, -98.9, 19.6))  # Mexico City: 0.3 square degrees
    assert state.where([])[0]
    with pytest.raises(FilterError, match="square degrees") as err:
        Filters(bbox=BBox(-120.0, 10.0, -80.0, 35.0)).where([])  # all of Mexico and more
    assert err.value.param == "bbox" and MAX_BBOX_AREA == 25.0
