"""Incident ids: the source's own, or a stable hash of the normalised record.

Sources without ids (FGJ's open file has none) get a 96-bit hash of the normalised fields
that identify an incident: source, WGS84 lon/lat, local wall-clock time and offense name.
Rows equal in all of them are the same incident published twice; ``identical_rows =
"distinct"`` in a profile numbers such repeats instead (police.uk anti-social behaviour
rows are distinct incidents that share month and snap point).

The hash is defined here, not by a library whose output may change between versions:
each field becomes 64-bit words (IEEE-754 bits for floats, BLAKE2b of UTF-8 for text),
folded into two lanes (a polynomial with distinct odd multipliers, each finished
with the SplitMix64 finaliser, Steele et al. 2014).
"""

from __future__ import annotations

import binascii
import hashlib

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

U64 = npt.NDArray[np.uint64]
_SEEDS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))
_MULTS = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))


def _mix(x: U64) -> U64:
    """SplitMix64's finaliser, in place: a bijection on 64-bit words with full avalanche."""
    # In place: a million-row ingest would otherwise fault in ten fresh arrays here.
    t = np.empty_like(x)
    with np.errstate(over="ignore"):
        for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None)):
            np.right_shift(x, np.uint64(shift), out=t)
            x ^= t
            if mult is not None:
                x *= np.uint64(mult)
    return x


def _text_words(values: pa.Array) -> U64:
    """One 64-bit word per row for a text column (hashing each distinct value once)."""
    encoded = (
        values
        if pa.types.is_dictionary(values.type)
        else pc.cast(values, pa.string()).dictionary_encode()
    )
    words = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b((v or "").encode(), digest_size=8).digest(), "little")
            for v in encoded.dictionary.to_pylist()
        ),
        dtype=np.uint64,
        count=len(encoded.dictionary),
    )
    idx = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
    return words[idx] if words.size else np.zeros(len(values), np.uint64)


def _fold(start: int, fields: list[U64], occurrence: U64 | None) -> tuple[U64, U64]:
    """Two independent 64-bit lanes: a polynomial over the words, then the finaliser.

    ``start`` is the first word, the same on every row (the source's).
    """
    words = fields + ([occurrence] if occurrence is not None else [])
    lanes = []
    for seed, mult in zip(_SEEDS, _MULTS, strict=True):
        first = (int(seed) * int(mult) + start) % (1 << 64)  # h = seed, then h * mult + start
        h = np.full(words[0].shape, first, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for word in words:
                h *= mult
                h += word
        lanes.append(_mix(h))
    return lanes[0], lanes[1]


def _hex(hi: U64, lo: U64) -> pa.Array:
    """The first 24 lower-case hex digits (96 bits) of (hi, lo), as a string array."""
    n = hi.size
    # Big-endian bytes of the 96 bits, hexlified in C in one pass (faster than a per-byte
    # table lookup in numpy).
    packed = np.empty(n, dtype=[("hi", ">u8"), ("lo", ">u4")])
    packed["hi"] = hi
    packed["lo"] = (lo >> np.uint64(32)).astype(np.uint32)
    data = binascii.hexlify(packed.data)
    offsets = np.arange(0, 24 * (n + 1), 24, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def record_ids(
    source: str,
    lon: npt.NDArray[np.float64],
    lat: npt.NDArray[np.float64],
    local_us: npt.NDArray[np.int64],
    offense: pa.Array,
    distinct_repeats: bool = False,
) -> tuple[pa.Array, U64]:
    """Stable 24-hex-digit ids for records without a source id, and their first 64 bits.

    Parameters
    ----------
    source
        Profile name.
    lon, lat
        WGS84 coordinates as stored.
    local_us
        Local wall-clock time, microseconds since 1970-01-01.
    offense
        The offense name as published (trimmed).
    distinct_repeats
        Number the k-th repeat of an identical record so that each gets its own id.

    Returns
    -------
    ids, key
        The ids, and their first 16 hex digits as uint64 (a fast key for deduplication).
    """
    src_word = int(_text_words(pa.array([source]))[0])
    fields = [
        np.ascontiguousarray(lon, dtype=np.float64).view(np.uint64),
        np.ascontiguousarray(lat, dtype=np.float64).view(np.uint64),
        np.ascontiguousarray(local_us, dtype=np.int64).view(np.uint64),
        _text_words(offense),
    ]
    hi, lo = _fold(src_word, fields, None)
    if distinct_repeats:
        rank = _repeat_rank(hi, lo)
        if rank.any():
            hi2, lo2 = _fold(src_word, fields, rank.astype(np.uint64))
            hi = np.where(rank > 0, hi2, hi)
            lo = np.where(rank > 0, lo2, lo)
    return _hex(hi, lo), hi


def _repeat_rank(hi: U64, lo: U64) -> npt.NDArray[np.int64]:
    """0 for the first occurrence of each (hi, lo), 1 for the second, and so on."""
    order = np.lexsort((lo, hi))
    h, l_ = hi[order], lo[order]
    new = np.r_[True, (h[1:] != h[:-1]) | (l_[1:] != l_[:-1])]
    group_start = np.maximum.accumulate(np.where(new, np.arange(h.size), 0))
    rank_sorted = np.arange(h.size) - group_start
    rank = np.empty(h.size, dtype=np.int64)
    rank[order] = rank_sorted
    return rank
