"""Reason codes for rejected rows, and the repairs that are made (and flagged) instead.

Every rejected row carries exactly one reason: the first check it fails, in the order
below. The order matters: swapped coordinates are detected before range checks, and
coordinate problems before date problems.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a row was rejected (see docs/profiles.md for each)."""

    MALFORMED_ROW = "malformed_row"
    MISSING_COORDINATES = "missing_coordinates"
    DECIMAL_COMMA = "decimal_comma"
    NON_NUMERIC_COORDINATES = "non_numeric_coordinates"
    NOT_A_POINT = "not_a_point"
    SENTINEL_COORDINATES = "sentinel_coordinates"
    PROJECTED_WITHOUT_CRS = "projected_without_crs"
    SWAPPED_LAT_LON = "swapped_lat_lon"
    OUT_OF_RANGE = "out_of_range"
    OUTSIDE_JURISDICTION = "outside_jurisdiction"
    MISSING_DATE = "missing_date"
    MALFORMED_DATE = "malformed_date"
    MALFORMED_TIME = "malformed_time"
    AMBIGUOUS_TIME = "ambiguous_time"
    FUTURE_DATE = "future_date"
    BEFORE_SOURCE_START = "before_source_start"
    MISSING_OFFENSE = "missing_offense"


REASONS: list[Reason] = list(Reason)
# Codes stored per row: 0 means accepted; reason i is code i + 1.
CODE = {reason: i + 1 for i, reason in enumerate(REASONS)}


class Repair(StrEnum):
    """Fixes applied to accepted rows; each is recorded in the row's ``repairs`` column."""

    SWAPPED_LAT_LON = "swapped_lat_lon"
    TIME_FROM_DATE_FIELD = "time_from_date_field"
    MOJIBAKE = "mojibake"
