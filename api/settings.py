"""Settings, read from the environment with the ``CUADRA_`` prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerts.deliver import Delivery, Smtp
from data import DEFAULT_STORE


class StoreSettings(BaseSettings):
    """Where the store lives."""

    model_config = SettingsConfigDict(env_prefix="CUADRA_", extra="ignore")

    store: Path | str = Field(
        DEFAULT_STORE, description="Store folder, or s3://bucket/prefix (CUADRA_STORE)."
    )


class AlertSettings(StoreSettings):
    """How alerts are delivered (the server's and ``cuadra alerts run``'s)."""

    smtp_host: str | None = Field(None, description="SMTP server for alert mail; none: no mail.")
    smtp_port: int = Field(25, ge=1, le=65535, description="Its port.")
    smtp_from: str = Field("cuadra@localhost", description="The sender of alert mail.")
    smtp_user: str | None = Field(None, description="SMTP login, if the server wants one.")
    smtp_password: str | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS.")
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Where people reach this server: the base of links in alerts.",
    )
    alert_attempts: int = Field(5, ge=1, le=20, description="Tries per alert delivery.")
    alert_backoff: float = Field(
        2.0, ge=0, le=600, description="Seconds before a delivery's second try (doubling)."
    )

    def delivery(self) -> Delivery:
        """The delivery configuration these settings describe."""
        smtp = None
        if self.smtp_host:
            smtp = Smtp(
                self.smtp_host,
                self.smtp_port,
                self.smtp_from,
                self.smtp_user,
                self.smtp_password,
                self.smtp_starttls,
            )
        return Delivery(smtp, self.alert_attempts, self.alert_backoff)


class ServerSettings(AlertSettings):
    """The HTTP service."""

    host: str = Field("127.0.0.1", description="Address to listen on (CUADRA_HOST).")
    port: int = Field(8000, ge=1, le=65535, description="Port (CUADRA_PORT).")
    workers: int = Field(
        1, ge=1, le=64, description="Server processes sharing the port (CUADRA_WORKERS)."
    )
    refresh_seconds: float = Field(
        2.0,
        gt=0,
        description="How often a server looks for a remote store's new snapshot "
        "(CUADRA_REFRESH_SECONDS); a local store's are seen at once.",
    )
    basemap: str | None = Field(
        None,
        description="The map's basemap (CUADRA_BASEMAP): a PMTiles file (a Protomaps extract, "
        "or one `cuadra basemap build` wrote) served at /v1/tiles/basemap, or an XYZ raster URL "
        "template; none: the store's own archive (<store>/basemap/basemap.pmtiles) when built, "
        "else a plain background.",
    )
    basemap_url: str | None = Field(
        None, description="Older name of an XYZ raster basemap (CUADRA_BASEMAP_URL)."
    )
    request_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds a request's query may run before it is stopped."
    )
    rate_public: str = Field(
        "120/minute", description="Requests per client address without a key (limits syntax)."
    )
    rate_keyed: str = Field("1200/minute", description="Requests per API key.")
    redis_url: str | None = Field(
        None,
        description="redis://host:port/db (CUADRA_REDIS_URL): rate limits counted in Redis, "
        "shared by every API process; none: each process counts its own.",
    )
    rate_public_in_flight: int = Field(
        4,
        ge=1,
        le=1000,
        description="Requests one address without a key may have in flight at once, tiles "
        "apart (the map page asks three at a time); more are refused with 429.",
    )
    rate_tiles: str = Field(
        "1200/minute", description="Tile requests per key or address (a map view asks many)."
    )
    # Public outputs (SPEC §6); see docs/privacy.md for the reasoning behind each default.
    privacy_k: int = Field(
        5, ge=3, le=1000, description="Public counts below this (and above 0) are suppressed."
    )
    privacy_k_sensitive: int = Field(
        10, ge=3, le=1000, description="The threshold where sensitive offenses are counted."
    )
    privacy_delay_days: int = Field(
        7, ge=0, le=3650, description="Public figures end this many days before today."
    )
    privacy_coarse_layers: tuple[str, ...] = Field(
        ("colonia", "alcaldia"),
        description="Boundary layers coarse enough to publish sensitive offenses on.",
    )
    tiles_public_res: int = Field(
        9, ge=5, le=10, description="H3 resolution of the published counts behind public heatmaps."
    )
    attribution: str | None = Field(
        None,
        description="Attribution shown on maps and in TileJSON; none: the stored sources' "
        "profiles' `attribution` (`Datos: FGJ CDMX, datos abiertos · Cuadra`).",
    )
    cors_origins: tuple[str, ...] = Field(
        (),
        description="Origins allowed to call the API from a browser (embeds); none by default.",
    )
    warm_release: bool = Field(
        True,
        description="cuadra serve builds the public release of every published year on start.",
    )
    trusted_proxies: tuple[str, ...] = Field(
        (),
        description="Addresses of reverse proxies whose X-Forwarded-For is believed (none: "
        "the connection's address counts for the rate limit).",
    )
    privacy_coarse_h3: int = Field(
        7, ge=5, le=12, description="The finest H3 resolution that may show sensitive offenses."
    )
