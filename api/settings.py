"""Settings, read from the environment with the ``CUADRA_`` prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from data import DEFAULT_STORE


class StoreSettings(BaseSettings):
    """Where the store lives."""

    model_config = SettingsConfigDict(env_prefix="CUADRA_", extra="ignore")

    store: Path = Field(DEFAULT_STORE, description="Store folder (CUADRA_STORE).")


class ServerSettings(StoreSettings):
    """The HTTP service."""

    host: str = Field("127.0.0.1", description="Address to listen on (CUADRA_HOST).")
    port: int = Field(8000, ge=1, le=65535, description="Port (CUADRA_PORT).")
    basemap_url: str | None = Field(
        None, description="XYZ basemap template for the map pages; none: plain background."
    )
