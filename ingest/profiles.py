"""Source profiles: TOML files that map a source's columns onto the incident record.

The format is documented in ``docs/profiles.md``. Built-in profiles live in
``data/profiles/`` and are named by file stem.
"""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ingest.errors import IngestError

PROFILES_DIR = Path(__file__).resolve().parent.parent / "data" / "profiles"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Columns(_Strict):
    """Which source columns hold each part of the record."""

    id: str | None = Field(None, description="Source id; without it ids are hashed rows.")
    lat: str | None = Field(None, description="Latitude (with lon).")
    lon: str | None = Field(None, description="Longitude (with lat).")
    x: str | None = Field(None, description="Projected x (with y and parse.crs).")
    y: str | None = Field(None, description="Projected y (with x and parse.crs).")
    geometry: str | None = Field(
        None, description="Point geometry column of a GeoJSON/GeoPackage/GeoParquet file."
    )
    date: str | None = Field(None, description="Local date (with optional time).")
    datetime: str | None = Field(None, description="Local date and time in one column.")
    time: str | None = Field(None, description="Local time of day, optional.")
    offense: str = Field(description="The source's offense name.")

    @model_validator(mode="after")
    def _one_way(self) -> Columns:
        latlon = self.lat is not None and self.lon is not None
        xy = self.x is not None and self.y is not None
        ways = int(latlon) + int(xy) + int(self.geometry is not None)
        if ways != 1:
            raise ValueError(
                "give exactly one of: lat and lon; x and y (with parse.crs); or geometry"
            )
        if (self.date is None) == (self.datetime is None):
            raise ValueError("give exactly one of date or datetime")
        if self.datetime is not None and self.time is not None:
            raise ValueError("time goes with date, not with datetime")
        return self


class Parse(_Strict):
    """How to read the values."""

    crs: str | None = Field(None, description="CRS of lat/lon or x/y; default EPSG:4326.")
    date_format: list[str] = Field(default_factory=lambda: ["%Y-%m-%d"])
    time_format: list[str] = Field(default_factory=lambda: ["%H:%M:%S", "%H:%M"])
    filler_times: list[str] = Field(
        default_factory=list,
        description="Local times the source writes when the real time is unknown.",
    )
    encoding: str = "utf-8"
    delimiter: str = ","
    decimal: Literal[".", ","] = "."
    null_values: list[str] = Field(default_factory=lambda: ["", "NA", "N/A", "NULL", "null"])
    start_date: date | None = Field(None, description="Records before this date are rejected.")
    layer: str | None = Field(None, description="Layer to read in a multi-layer file.")
    date_precision: Literal["day", "month"] | None = Field(
        None,
        description="What the source's dates are known to; default: `month` when no date "
        "format reads the day (%d, %e, %j, ...), else `day`.",
    )
    identical_rows: Literal["duplicate", "distinct"] = Field(
        "duplicate",
        description="Rows identical in every column and without an id: duplicates of one "
        "incident (dropped), or distinct incidents (kept, each with its own id).",
    )

    @model_validator(mode="before")
    @classmethod
    def _listify(cls, data: dict[str, object]) -> dict[str, object]:
        for key in ("date_format", "time_format"):
            if isinstance(data.get(key), str):
                data = {**data, key: [data[key]]}
        return data


class Bounds(_Strict):
    """The jurisdiction: points outside are rejected."""

    layer: str | None = None
    bbox: tuple[float, float, float, float] | None = None

    @model_validator(mode="after")
    def _check(self) -> Bounds:
        if self.bbox is not None:
            minlon, minlat, maxlon, maxlat = self.bbox
            if not (-180 <= minlon < maxlon <= 180 and -90 <= minlat < maxlat <= 90):
                raise ValueError(f"bbox {list(self.bbox)} is not minlon, minlat, maxlon, maxlat")
        return self


class Taxonomy(_Strict):
    """Where offense names are mapped to categories."""

    file: str | None = Field(None, description="CSV offense,category,sensitive; default data/'s.")


class Expect(_Strict):
    """Integrity checks of the whole input."""

    rows: int | None = Field(None, ge=0)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")


class Profile(_Strict):
    """A source profile (see docs/profiles.md)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Becomes `source`.")
    timezone: str
    description: str | None = None
    url: str | None = Field(None, description="Where the official file can be downloaded.")
    attribution: str | None = Field(
        None,
        description="How maps credit the source (`FGJ CDMX, datos abiertos`); default: its name.",
    )
    columns: Columns
    parse: Parse = Field(default_factory=Parse)
    bounds: Bounds = Field(default_factory=Bounds)
    taxonomy: Taxonomy = Field(default_factory=Taxonomy)
    expect: Expect = Field(default_factory=Expect)
    path: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _tz(self) -> Profile:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {self.timezone!r}") from exc
        if self.columns.x is not None and self.parse.crs is None:
            raise ValueError("x/y columns need parse.crs (e.g. 'EPSG:32614')")
        return self

    @property
    def date_precision(self) -> str:
        """``day`` or ``month``: declared (``[parse] date_precision``), else read off the formats."""
        from ingest.times import carries_day

        if self.parse.date_precision is not None:
            return self.parse.date_precision
        return "day" if any(carries_day(f) for f in self.parse.date_format) else "month"


def builtin_profiles() -> list[str]:
    """Names of the built-in profiles."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def load_profile(name_or_path: str) -> Profile:
    """Load a built-in profile by name, or a profile file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = PROFILES_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise IngestError(
                f"unknown profile {name_or_path!r}: built-in profiles are "
                f"{', '.join(builtin_profiles())}, or give a path to a .toml file"
            )
    if not path.exists():
        raise IngestError(f"profile file {str(path)!r} does not exist")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise IngestError(f"profile {str(path)!r} is not valid TOML: {exc}") from exc
    try:
        return Profile.model_validate({**raw, "path": str(path)})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'profile'}: {e['msg']}" for e in exc.errors()
        )
        raise IngestError(f"profile {str(path)!r} is invalid: {problems}") from exc
