"""What the public may see (SPEC §6): the rules of a server, from its settings.

The rules themselves (thresholds, complementary suppression, the audit) are the pure core
in :mod:`disclosure`; docs/privacy.md explains each one and where it comes from.
"""

from __future__ import annotations

from api.settings import ServerSettings
from disclosure.rules import PublicRules


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
