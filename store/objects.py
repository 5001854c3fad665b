"""A store on S3-compatible object storage, read through a folder on this machine.

A store at ``s3://bucket/prefix`` lives in the bucket; every process that opens it keeps
a cache folder of the objects it has read or written (``CUADRA_CACHE``, by default under
``~/.cache/cuadra``). Data files, cubes, layers, manifests and release tables never change
once written, so a cached copy is always right, and the engine reads local files at local
speed. The few objects that do change (the key ring, the basemap) are read again when
their ETag changes and written with ``If-Match``.

Publishing a snapshot is a conditional put (``If-None-Match: *``) of its manifest after
every file it names is uploaded: two writers on two machines cannot both publish snapshot
``n``, and a reader never finds a manifest whose files are missing. The client is obstore
(the Rust ``object_store`` crate), configured from the usual ``AWS_*`` variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
``AWS_ALLOW_HTTP``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from store.errors import StoreError

SCHEME = "s3://"


def is_remote(location: str | os.PathLike[str]) -> bool:
    """Whether a store location is an object store URL rather than a folder."""
    return str(location).startswith(SCHEME)


def cache_folder(url: str) -> Path:
    """The folder on this machine for a remote store's objects (one per URL)."""
    base = os.environ.get("CUADRA_CACHE") or Path.home() / ".cache" / "cuadra"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return (Path(base) / digest).resolve()


def local_root(location: str | os.PathLike[str]) -> Path:
    """The folder a store's files are read from here: itself, or a remote store's cache."""
    if is_remote(location):
        return cache_folder(str(location).rstrip("/"))
    return Path(location).resolve()


class Remote:
    """The objects of one store under a bucket's prefix."""

    def __init__(self, url: str) -> None:
        from obstore.store import from_url

        if not is_remote(url) or len(url) <= len(SCHEME) or url[len(SCHEME)] == "/":
            raise StoreError(f"{url!r} is not an object store URL (s3://bucket/prefix)")
        self.url = url.rstrip("/")
        try:
            self._store = from_url(self.url)
        except Exception as exc:  # obstore's configuration errors name the variable
            raise StoreError(f"cannot open {self.url}: {exc}") from exc

    @contextmanager
    def _reaching(self, what: str) -> Iterator[None]:
        """Errors of the object store as one-line StoreErrors naming the store."""
        from obstore.exceptions import BaseError

        try:
            yield
        except FileNotFoundError:
            raise
        except (BaseError, OSError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            raise StoreError(f"cannot {what} {self.url}: {first}") from exc

    def listing(self, prefix: str) -> dict[str, str]:
        """Keys under a folder-like prefix, with their ETags."""
        import obstore

        found: dict[str, str] = {}
        with self._reaching("list"):
            for chunk in obstore.list(self._store, prefix=prefix.rstrip("/") + "/"):
                for meta in chunk:
                    found[meta["path"]] = meta.get("e_tag") or ""
        return found

    def modified(self, prefix: str) -> dict[str, datetime]:
        """Keys under a folder-like prefix, with the time each was last written."""
        import obstore

        found: dict[str, datetime] = {}
        with self._reaching("list"):
            for chunk in obstore.list(self._store, prefix=prefix.rstrip("/") + "/"):
                for meta in chunk:
                    found[meta["path"]] = meta["last_modified"]
        return found

    def get(self, key: str) -> tuple[bytes, str] | None:
        """An object's bytes and ETag; None if there is no such object."""
        import obstore

        with self._reaching("read from"):
            try:
                result = obstore.get(self._store, key)
            except FileNotFoundError:
                return None
            return bytes(result.bytes()), result.meta.get("e_tag") or ""

    def etag(self, key: str) -> str | None:
        """An object's ETag, None if there is no such object."""
        import obstore

        with self._reaching("read from"):
            try:
                return obstore.head(self._store, key).get("e_tag") or ""
            except FileNotFoundError:
                return None

    def put(self, key: str, data: bytes | Path, *, etag: str | None | bool = True) -> bool:
        """Write an object; False if the condition failed.

        ``etag``: True writes unconditionally; None only if no object is there (put if
        absent); a string only if the object still has that ETag.
        """
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        mode: str | dict[str, str]
        mode = "overwrite" if etag is True else "create" if etag is None else {"e_tag": str(etag)}
        with self._reaching("write to"):
            try:
                if isinstance(data, Path):
                    with data.open("rb") as fh:
                        obstore.put(self._store, key, fh, mode=mode)  # type: ignore[arg-type]
                else:
                    obstore.put(self._store, key, data, mode=mode)  # type: ignore[arg-type]
            except (AlreadyExistsError, PreconditionError):
                return False
        return True

    def download(self, key: str, target: Path) -> bool:
        """Copy an object to a local file (atomically); False if there is no such object."""
        import obstore

        with self._reaching("read from"):
            try:
                result = obstore.get(self._store, key)
            except FileNotFoundError:
                return False
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".dl-", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    for chunk in result.stream(min_chunk_size=8 << 20):
                        fh.write(chunk)
                os.replace(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
        return True

    def delete(self, keys: list[str]) -> None:
        """Remove objects (vacuum)."""
        import obstore

        if keys:
            with self._reaching("delete from"):
                obstore.delete(self._store, keys)
