"""SQL expressions the store's queries share: allow-listed identifiers, H3 parents.

Values always go to DuckDB as bound parameters; only these expressions, built from
checked identifiers and integers, are written into query text.
"""

from __future__ import annotations

from store.errors import StoreError

H3_MODE_BITS = 52  # an H3 index holds its resolution in bits 52-55


def quote(identifier: str) -> str:
    """Quote an identifier that was already checked against an allow-list."""
    if not identifier.replace("_", "").isalnum():
        raise StoreError(f"refusing identifier {identifier!r}")
    return f'"{identifier}"'


def h3_parent(column: str, res: int) -> str:
    """The parent at ``res`` of the finer H3 cells in ``column`` (UBIGINT), as UBIGINT.

    By the bits of the index, as ``h3.cell_to_parent`` (and ``geo.cells.cells_to_parents``
    for arrays): the resolution set to ``res``, the digits below it set to 7 (unused).
    """
    r = int(res)
    if not 0 <= r <= 15:
        raise StoreError(f"no H3 resolution {res!r}")
    unused = (1 << (3 * (15 - r))) - 1
    return (
        f"(({quote(column)} & ~(15::UBIGINT << {H3_MODE_BITS})) "
        f"| ({r}::UBIGINT << {H3_MODE_BITS}) | {unused}::UBIGINT)"
    )
