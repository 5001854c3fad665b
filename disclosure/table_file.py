"""A published table as bytes, so that it is built once and read by every server.

NumPy's ``.npz`` (a zip of ``.npy`` arrays) read with ``allow_pickle=False``: a table file
holds arrays of numbers and strings only, and reading one never runs code, whoever wrote
the store. ``VERSION`` changes whenever the table's fields do; a file of another version is
not read (the table is built again).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from disclosure.audit import Audit
from disclosure.table import PublishedTable

VERSION = 1
_AUDIT_COUNTS = ("rounds", "covers", "unresolved", "first_provable")


def dump(table: PublishedTable) -> bytes:
    """The table's bytes."""
    slices = np.array(
        [(*key, *span) for key, span in table.slices.items()], dtype=np.int64
    ).reshape(-1, 5)
    arrays: dict[str, Any] = {
        "version": np.array([VERSION]),
        "ids": np.array(["" if u is None else u for u in table.ids], dtype=np.str_),
        "ids_none": np.array([u is None for u in table.ids], dtype=np.bool_),
        "unit": table.unit,
        "period": table.period,
        "node": table.node,
        "value": table.value,
        "hidden": table.hidden,
        "units": np.array([-1 if table.units is None else table.units]),
        "slices": slices,
    }
    if table.checked is not None:
        arrays["audit_hidden"] = table.checked.hidden
        arrays["audit_lo"] = table.checked.lo
        arrays["audit_hi"] = table.checked.hi
        arrays["audit_counts"] = np.array([getattr(table.checked, c) for c in _AUDIT_COUNTS])
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def load(data: bytes) -> PublishedTable | None:
    """A table from its bytes; None if they are of another version."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        if "version" not in z.files or int(z["version"][0]) != VERSION:
            return None
        ids = [None if none else str(u) for u, none in zip(z["ids"], z["ids_none"], strict=True)]
        checked = None
        if "audit_counts" in z.files:
            counts = dict(zip(_AUDIT_COUNTS, (int(c) for c in z["audit_counts"]), strict=True))
            checked = Audit(z["audit_hidden"], z["audit_lo"], z["audit_hi"], **counts)
        units = int(z["units"][0])
        return PublishedTable(
            ids=ids,
            unit=z["unit"],
            period=z["period"],
            node=z["node"],
            value=z["value"],
            hidden=z["hidden"],
            units=None if units < 0 else units,
            slices={(int(p), int(n), int(r)): (int(a), int(b)) for p, n, r, a, b in z["slices"]},
            checked=checked,
        )
