"""Offense names to categories and the sensitive flag (data/taxonomy/offenses.csv)."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ingest.errors import IngestError
from store.names import fold

__all__ = ["Classified", "Taxonomy", "fold", "repair_mojibake", "trimmed_dictionary"]

TAXONOMY_DIR = Path(__file__).resolve().parent.parent / "data" / "taxonomy"
UNKNOWN = "unknown"
_MOJIBAKE_MARKS = ("Ã", "Â", "â€")


def repair_mojibake(text: str) -> str | None:
    """Undo UTF-8 read as cp1252/Latin-1 ("VIOLACIÃ“N" -> "VIOLACIÓN"); None if not that."""
    if not any(m in text for m in _MOJIBAKE_MARKS):
        return None
    for codec in ("cp1252", "latin-1"):
        try:
            fixed = text.encode(codec).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        if fixed != text:
            return fixed
    return None


def trimmed_dictionary(column: pa.ChunkedArray | pa.Array) -> pa.DictionaryArray:
    """A text column as a dictionary array whose values are trimmed of white space.

    Offense names repeat a few hundred values over millions of rows: trimming, matching
    and hashing then run once per distinct value.
    """
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_dictionary(arr.type):
        arr = pc.cast(arr, pa.string()).dictionary_encode()
    values = pc.utf8_trim_whitespace(pc.cast(arr.dictionary, pa.string()))
    return pa.DictionaryArray.from_arrays(arr.indices.cast(pa.int32()), values)


@dataclass(frozen=True)
class Taxonomy:
    """An offense -> (category, sensitive) table, matched on folded names."""

    table: dict[str, tuple[str, bool]]

    @classmethod
    def load(cls, path: str | Path | None = None) -> Taxonomy:
        """Load a taxonomy CSV with columns offense, category, sensitive."""
        p = Path(path) if path else TAXONOMY_DIR / "offenses.csv"
        if not p.exists():
            raise IngestError(f"taxonomy file {str(p)!r} does not exist")
        table: dict[str, tuple[str, bool]] = {}
        with open(p, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"offense", "category", "sensitive"} - set(reader.fieldnames or [])
            if missing:
                raise IngestError(f"taxonomy {p.name!r} lacks columns {sorted(missing)}")
            for line, row in enumerate(reader, start=2):
                flag = row["sensitive"].strip().lower()
                if flag not in ("true", "false"):
                    raise IngestError(
                        f"taxonomy {p.name!r} line {line}: sensitive must be true or false, "
                        f"got {row['sensitive']!r}"
                    )
                table[fold(row["offense"])] = (row["category"].strip(), flag == "true")
        return cls(table)

    def classify(self, offense: pa.Array) -> Classified:
        """Map a column of offense names; repairs mojibake in names and says where."""
        encoded = (
            offense.dictionary_encode() if not pa.types.is_dictionary(offense.type) else offense
        )
        names = encoded.dictionary.to_pylist()
        fixed_names: list[str] = []
        repaired_name = np.zeros(len(names), dtype=bool)
        cats: list[str] = []
        sens = np.zeros(len(names), dtype=bool)
        unknown: Counter[str] = Counter()
        for i, name in enumerate(names):
            fixed = repair_mojibake(name) if name is not None else None
            if fixed is not None:
                repaired_name[i] = True
                name = fixed
            fixed_names.append(name)
            hit = self.table.get(fold(name)) if name is not None else None
            cats.append(hit[0] if hit else UNKNOWN)
            sens[i] = bool(hit and hit[1])
        idx = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
        counts = np.bincount(idx, minlength=len(names))
        for i, name in enumerate(fixed_names):
            if cats[i] == UNKNOWN and counts[i]:
                unknown[name] += int(counts[i])
        indices = encoded.indices.cast(pa.int32())
        return Classified(
            offense=pa.DictionaryArray.from_arrays(indices, pa.array(fixed_names, pa.string())),
            category=pa.DictionaryArray.from_arrays(indices, pa.array(cats, pa.string())),
            sensitive=sens[idx],
            mojibake=repaired_name[idx],
            unknown=dict(unknown),
        )


@dataclass
class Classified:
    """Per-row results of classification."""

    offense: pa.Array
    category: pa.Array
    sensitive: npt.NDArray[np.bool_]
    mojibake: npt.NDArray[np.bool_]
    unknown: dict[str, int]

    def take(self, rows: npt.NDArray[np.intp]) -> Classified:
        """The same classification for a subset (or reordering) of rows."""
        idx = pa.array(rows)
        return Classified(
            offense=self.offense.take(idx),
            category=self.category.take(idx),
            sensitive=self.sensitive[rows],
            mojibake=self.mojibake[rows],
            unknown=self.unknown,
        )
