"""Incident ids: the source's own, or a stable hash of the whole source row."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SEP = "\x1f"


def row_hashes(table: pa.Table, occurrence: bool) -> pa.Array:
    """MD5 (hex, first 24 digits = 96 bits) of each row's values joined by U+001F.

    The row text is the values as the source wrote them (numbers formatted by Arrow's
    shortest round-trip form), so the id does not change between runs or versions.
    With ``occurrence``, the n-th repeat of an identical row gets ``#n`` appended before
    hashing: identical rows then count as distinct incidents.
    """
    cols = []
    for col in table.columns:
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        cols.append(pc.fill_null(pc.cast(arr, pa.large_string()), ""))
    joined = pc.binary_join_element_wise(*cols, pa.scalar(_SEP, pa.large_string()))
    if occurrence:
        joined = _with_occurrence(joined)
    con = duckdb.connect()
    try:
        con.register("row_text", pa.table({"s": joined}))
        out = con.sql("SELECT substr(md5(s), 1, 24) AS h FROM row_text").to_arrow_table()
    finally:
        con.close()
    return out.column("h").combine_chunks().cast(pa.string())


def _with_occurrence(joined: pa.Array) -> pa.Array:
    codes = joined.dictionary_encode().indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    rank_sorted = np.arange(codes.size) - np.repeat(starts, np.diff(np.r_[starts, codes.size]))
    rank = np.empty_like(rank_sorted)
    rank[order] = rank_sorted
    suffix = pc.cast(pa.array(rank), pa.large_string())
    marked = pc.binary_join_element_wise(joined, suffix, pa.scalar("#", pa.large_string()))
    return pc.if_else(pa.array(rank > 0), marked, joined)
