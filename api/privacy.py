"""What the public may see (SPEC §6): the rules of a server, from its settings.

The rules themselves (thresholds, complementary suppression, the audit) are the pure core
in :mod:`disclosure`; docs/privacy.md explains each one and where it comes from.
"""

from __future__ import annotations

from api.settings import ServerSettings
from disclosure.rules import NotPublished, PublicRules
from store.aggregate import Unit
from store.filters import FilterError


def rules_from_settings(settings: ServerSettings) -> PublicRules:
    """The rules a server was configured with (``CUADRA_PRIVACY_*``)."""
    return PublicRules(
        k=settings.privacy_k,
        k_sensitive=settings.privacy_k_sensitive,
        delay_days=settings.privacy_delay_days,
        coarse_layers=tuple(settings.privacy_coarse_layers),
        coarse_h3=settings.privacy_coarse_h3,
        finest_h3=settings.tiles_public_res,
    )


def coarse(rules: PublicRules, unit: Unit | None) -> bool:
    """Whether sensitive offenses may be shown on this unit (None: the whole area)."""
    if unit is None:
        return rules.coarse(None)
    return rules.coarse(unit.kind, unit.layer, unit.res)


def refusal(exc: NotPublished) -> FilterError:
    """The 400 a public request gets for a figure the release does not hold."""
    return FilterError(exc.parameter, exc.value, exc.message)
