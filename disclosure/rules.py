"""The thresholds and delays of public outputs, and the refusal of what is not published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class NotPublished(ValueError):  # noqa: N818 - a refusal, not a failure
    """A public request for a figure the release does not hold; names the parameter."""

    def __init__(self, parameter: str, value: Any, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value
        self.message = message


@dataclass(frozen=True)
class PublicRules:
    """The thresholds and delays of public outputs (settings ``CUADRA_PRIVACY_*``)."""

    k: int = 5
    k_sensitive: int = 10
    delay_days: int = 7
    coarse_layers: tuple[str, ...] = ("colonia", "alcaldia")
    coarse_h3: int = 7
    finest_h3: int = 9  # the finest H3 cells the public sees

    def coarse(self, kind: str | None, layer: str | None = None, res: int | None = None) -> bool:
        """Whether sensitive offenses may be shown on a unit (kind None: the whole area)."""
        if kind is None:
            return True
        if kind == "h3":
            return res is not None and res <= self.coarse_h3
        return kind == "layer" and layer in self.coarse_layers
