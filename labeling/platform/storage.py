"""Content-addressed audio storage: ``open_store(url, cache_dir=…)``, then ``store.put(data, ext)``.

The key is derived from the SHA-256 of the bytes, so the same bytes are stored once however often
they are imported. Stored files are written atomically and made read-only: originals never change.

Two stores share one interface (:class:`AudioStorage`): :class:`AudioStore`, a local folder, and
:class:`S3AudioStore`, an ``s3://bucket/prefix`` in any S3-compatible object store, read and written
through fsspec/s3fs with the standard AWS credentials and endpoint settings. Objects there are written
once and never overwritten; :meth:`~AudioStorage.path` hands back a local copy from a bounded read
cache, so everything that decodes or plays audio works on a file as it does with the local store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

COPY_CHUNK = 2**20
#: How long a remote store that just failed to answer is taken to be still down (no request meanwhile).
UNREADABLE_RECHECK_S = 10.0
log = logging.getLogger("earmark")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def storage_key(sha256: str, ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if not ext.isalnum() or len(ext) > 8:
        raise ValueError(f"unsupported audio file extension: {ext!r}")
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("a storage key needs a lowercase hex SHA-256")
    return f"{sha256[:2]}/{sha256}.{ext}"


#: What a storage key looks like: two hex digits, the SHA-256, the extension.
KEY_PATTERN = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}\.[a-z0-9]{1,8}$")
DEFAULT_CACHE_BYTES = 2 * 2**30


class AudioStorage(Protocol):
    """What every audio store offers; keys come from :func:`storage_key`."""

    @property
    def url(self) -> str:
        """Where the store is (a folder, or ``s3://bucket/prefix``)."""
        ...

    @property
    def is_local(self) -> bool: ...

    def path(self, key: str) -> Path:
        """A local file holding the clip's bytes (for a remote store: a copy in the read cache). When the
        store has lost the clip, the path names no file: callers check ``is_file()``."""
        ...

    @property
    def base(self) -> str:
        """What a key is appended to for :meth:`location` (an absolute folder with a separator, or a URL
        ending in ``/``)."""
        ...

    def location(self, key: str) -> str:
        """Where the clip lives, for references in exports: an absolute path or an ``s3://`` URL."""
        ...

    def exists(self, key: str) -> bool: ...

    def read_bytes(self, key: str) -> bytes: ...

    def put(self, data: bytes, ext: str, *, sha256: str | None = None) -> tuple[str, bool]: ...

    def put_file(self, source: Path, ext: str, *, sha256: str) -> tuple[str, bool]:
        """Store a local file's bytes, streamed (never whole in memory); returns (key, created)."""
        ...

    def age_seconds(self, key: str) -> float | None:
        """Seconds since the stored clip was last written or re-stored; None when it is not there."""
        ...

    def remove(self, key: str) -> None: ...

    def fetch_many(self, keys: Iterable[str]) -> None:
        """Bring many clips into the read cache at once (nothing to do for a local store)."""
        ...

    def iter_keys(self) -> Iterator[str]:
        """Every stored audio key."""
        ...

    def readable(self) -> bool:
        """Whether the store itself answers (a folder that exists, can be listed and holds something;
        a bucket that answers). A clip not found in a store that answers is gone; in one that does not,
        every clip would look gone."""
        ...


@dataclass(frozen=True)
class AudioStore:
    """A local folder of content-addressed audio files."""

    root: Path

    @property
    def url(self) -> str:
        return str(self.root.resolve())

    @property
    def is_local(self) -> bool:
        return True

    @property
    def base(self) -> str:
        return str(self.root.resolve()) + os.sep

    def location(self, key: str) -> str:
        return str(self.path(key))

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def fetch_many(self, keys: Iterable[str]) -> None:
        return None

    def iter_keys(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for path in self.root.glob("??/*"):
            key = path.relative_to(self.root).as_posix()
            if KEY_PATTERN.match(key):
                yield key

    def readable(self) -> bool:
        # A folder that exists but is empty is most often a mount point with nothing mounted on it.
        try:
            with os.scandir(self.root) as entries:
                return next(entries, None) is not None
        except OSError:
            return False

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"storage key escapes the audio store: {key!r}")
        return path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, data: bytes, ext: str, *, sha256: str | None = None) -> tuple[str, bool]:
        """Store ``data``; returns (key, created). Existing content is left untouched."""
        return self._store(sha256 or sha256_bytes(data), ext, lambda fh: fh.write(data))

    def put_file(self, source: Path, ext: str, *, sha256: str) -> tuple[str, bool]:
        """Store a local file's bytes, copied in chunks; returns (key, created)."""

        def copy(fh: Any) -> None:
            with Path(source).open("rb") as src:
                shutil.copyfileobj(src, fh, COPY_CHUNK)

        return self._store(sha256, ext, copy)

    def _store(self, digest: str, ext: str, write: Callable[[Any], object]) -> tuple[str, bool]:
        key = storage_key(digest, ext)
        # A key made here from a hex digest and an alphanumeric extension cannot leave the store, so
        # the two path resolutions of ``path`` (a few hundred microseconds a file) are not needed.
        target = self.root / key
        if target.is_file():
            _touch(target)  # stored again: young once more, so the orphan sweep leaves it be
            return key, False
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        _lock_while_writing(fd)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            Path(tmp).chmod(0o444)
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key, True

    def age_seconds(self, key: str) -> float | None:
        try:
            return max(0.0, time.time() - self.path(key).stat().st_mtime)
        except OSError:
            return None

    def remove(self, key: str) -> None:
        """Remove a stored file (an orphan no clip refers to)."""
        self.path(key).unlink(missing_ok=True)


def _lock_while_writing(fd: int) -> None:
    """An advisory lock on an ``.incoming-`` file, so a sweep of leftovers passes it by."""
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (ImportError, OSError):
        pass


def _touch(path: Path) -> None:
    """Mark content stored again now, so an orphan sweep's grace period starts over for it."""
    with contextlib.suppress(OSError):
        os.utime(path)


# --- object storage ----------------------------------------------------------------------------------


def is_remote_url(url: str | os.PathLike[str] | None) -> bool:
    """True for an ``s3://`` URL (the only remote scheme Earmark writes to)."""
    return str(url or "").startswith("s3://")


def _split_s3(url: str) -> tuple[str, str]:
    rest = url[len("s3://") :].strip("/")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"an object-store URL needs a bucket: {url!r} (s3://bucket/prefix)")
    return bucket, prefix.strip("/")


def s3_filesystem() -> Any:
    """An s3fs filesystem configured from the standard AWS environment and config files.

    Credentials come from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` or
    ``~/.aws``; a non-AWS store (MinIO, Ceph, GCS interoperability) is named by ``AWS_ENDPOINT_URL_S3``
    or ``AWS_ENDPOINT_URL``. Listings are never cached: another server may have written meanwhile.
    """
    try:
        import s3fs
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("s3:// storage needs s3fs: pip install 'earmark[s3]'") from exc
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    return s3fs.S3FileSystem(endpoint_url=endpoint, use_listings_cache=False)


@dataclass(eq=False)  # one store per process; compared (and hashed) by identity
class S3AudioStore:
    """Content-addressed audio under ``s3://bucket/prefix``, with a bounded local read cache.

    Objects are written once: every write is conditional (``If-None-Match: *``), so an existing key
    is never written again. The cache holds at most ``cache_bytes`` and drops the least
    recently used copies first; a copy never goes stale, since a key names its content.
    """

    bucket_url: str
    cache_dir: Path
    cache_bytes: int = DEFAULT_CACHE_BYTES
    fs: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cached: int | None = field(default=None, repr=False)
    _failed_at: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.bucket, self.prefix = _split_s3(self.bucket_url)
        self.cache_dir = Path(self.cache_dir)
        if self.fs is None:
            self.fs = s3_filesystem()

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def is_local(self) -> bool:
        return False

    def _object(self, key: str) -> str:
        if not KEY_PATTERN.match(key):
            raise ValueError(f"not a storage key: {key!r}")
        return f"{self.bucket}/{self.prefix}/{key}" if self.prefix else f"{self.bucket}/{key}"

    @property
    def base(self) -> str:
        return self.url + "/"

    def location(self, key: str) -> str:
        return f"s3://{self._object(key)}"

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._object(key)))

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def put(self, data: bytes, ext: str, *, sha256: str | None = None) -> tuple[str, bool]:
        """Store ``data``; returns (key, created). Existing content is left untouched."""
        key = storage_key(sha256 or sha256_bytes(data), ext)
        # One conditional request: the store itself refuses to overwrite an existing object. A store
        # that ignores If-None-Match rewrites the same bytes under the same key, which changes nothing.
        target = self._object(key)
        try:
            self.fs.pipe_file(target, data, IfNoneMatch="*")
        except FileExistsError:
            return key, False
        except OSError:
            # A store that refuses conditional writes (or a passing fault): look, then write.
            if self.fs.exists(target):
                return key, False
            self.fs.pipe_file(target, data)
        return key, True

    def put_file(self, source: Path, ext: str, *, sha256: str) -> tuple[str, bool]:
        """Store a local file's bytes (a multipart upload for large files); returns (key, created)."""
        if Path(source).stat().st_size <= COPY_CHUNK * 16:
            return self.put(Path(source).read_bytes(), ext, sha256=sha256)
        key = storage_key(sha256, ext)
        target = self._object(key)
        if self.fs.exists(target):
            return key, False
        self.fs.put_file(str(source), target)
        return key, True

    def age_seconds(self, key: str) -> float | None:
        try:
            info = self.fs.info(self._object(key))
        except FileNotFoundError:
            return None
        modified = info.get("LastModified") or info.get("last_modified")
        if modified is None:
            return None
        stamp = modified.timestamp() if isinstance(modified, datetime) else float(modified)
        return max(0.0, time.time() - stamp)

    def remove(self, key: str) -> None:
        """Remove a stored object (an orphan no clip refers to)."""
        self.fs.rm_file(self._object(key))
        (self.cache_dir / key).unlink(missing_ok=True)

    def iter_keys(self) -> Iterator[str]:
        base = f"{self.bucket}/{self.prefix}".rstrip("/") + "/"
        for name in self.fs.find(base):
            key = str(name)[len(base) :]
            if KEY_PATTERN.match(key):
                yield key

    # --- the read cache

    def path(self, key: str) -> Path:
        local = self.cache_dir / key
        try:
            os.utime(local)  # a hit: mark it recently used
            return local
        except FileNotFoundError:
            pass
        if self._failed_recently():
            return local  # a page of clips waits once for a store that does not answer, not per clip
        try:
            data = self.fs.cat_file(self._object(key))
        except FileNotFoundError:
            return local  # the store has lost it: like a local store, a path with no file behind it
        except Exception as exc:  # botocore's connection and credential errors are not OSErrors
            # The store does not answer: no file either, and readable() says why without a second wait.
            self._failed_at = time.monotonic()
            log.warning("cannot read %s from %s: %s", key, self.url, exc)
            return local
        self._failed_at = None
        self._keep(key, data)
        return local

    def _failed_recently(self) -> bool:
        return self._failed_at is not None and time.monotonic() - self._failed_at < UNREADABLE_RECHECK_S

    def readable(self) -> bool:
        if self._failed_recently():
            return False
        try:
            self.fs.call_s3("head_bucket", Bucket=self.bucket)
        except Exception as exc:
            self._failed_at = time.monotonic()
            log.warning("the audio store %s does not answer: %s", self.url, exc)
            return False
        self._failed_at = None
        return True

    def fetch_many(self, keys: Iterable[str]) -> None:
        """Fetch the clips not cached yet, many requests at a time."""
        wanted = [k for k in dict.fromkeys(keys) if not (self.cache_dir / k).is_file()]
        for start in range(0, len(wanted), 256):
            chunk = wanted[start : start + 256]
            got = self.fs.cat([self._object(k) for k in chunk], on_error="raise")
            for k in chunk:
                self._keep(k, got[self._object(k)])

    def _keep(self, key: str, data: bytes) -> None:
        local = self.cache_dir / key
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=local.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            Path(tmp).replace(local)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._lock:
            if self._cached is None:
                self._cached = sum(p.stat().st_size for p in self.cache_dir.glob("??/*") if p.is_file())
            else:
                self._cached += len(data)
            if self._cached > self.cache_bytes:
                self._cached = self._evict(keep=local)

    def _evict(self, *, keep: Path) -> int:
        """Drop the least recently used copies until the cache is at 80% of its bound; the new size."""
        files = []
        for p in self.cache_dir.glob("??/*"):
            try:
                st = p.stat()
            except FileNotFoundError:  # another process evicted it
                continue
            files.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in files)
        for _, size, p in sorted(files, key=lambda f: f[0]):
            if total <= self.cache_bytes * 0.8:
                break
            if p != keep:
                p.unlink(missing_ok=True)
                total -= size
        return total


def open_store(url: str | Path, *, cache_dir: Path, cache_bytes: int = DEFAULT_CACHE_BYTES) -> AudioStorage:
    """The store at ``url``: a local folder, or an ``s3://bucket/prefix`` read through ``cache_dir``."""
    if is_remote_url(url):
        return S3AudioStore(str(url), cache_dir=cache_dir, cache_bytes=cache_bytes)
    if "://" in str(url):
        raise ValueError(f"unsupported audio store {url!r}: use a folder or an s3://bucket/prefix URL")
    return AudioStore(Path(url))


# --- whole files to and from URLs (exports) --------------------------------------------------------


def copy_file(source: str, target: Path) -> None:
    """Copy a stored file (a local path or an ``s3://`` URL) to the local file ``target``."""
    if is_remote_url(source):
        s3_filesystem().get_file(source[len("s3://") :], str(target))
    else:
        shutil.copyfile(source, target)


def read_url(ref: str) -> bytes:
    """The bytes of a local file or an ``s3://`` object."""
    if is_remote_url(ref):
        return bytes(s3_filesystem().cat_file(ref[len("s3://") :]))
    return Path(ref).read_bytes()


def require_empty_prefix(url: str) -> None:
    """Refuse an ``s3://`` prefix that already holds objects: exports never overwrite one another."""
    bucket, prefix = _split_s3(url)
    fs = s3_filesystem()
    if not fs.exists(bucket):
        raise FileNotFoundError(f"there is no bucket {bucket!r} at the configured object store")
    if prefix and fs.find(f"{bucket}/{prefix}/", maxdepth=None, withdirs=False):
        raise FileExistsError(f"{url} already holds objects; choose a new prefix")


def publish_folder(folder: Path, url: str, *, last: str | None = None) -> list[str]:
    """Upload every file under ``folder`` to the prefix ``url``; ``last`` (a relative path, e.g. the
    manifest) goes up after everything else, so a reader that finds it finds the whole export."""
    require_empty_prefix(url)
    bucket, prefix = _split_s3(url)
    base = f"{bucket}/{prefix}".rstrip("/")
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    rels = [p.relative_to(folder).as_posix() for p in files]
    order = sorted(range(len(files)), key=lambda i: rels[i] == last)
    fs = s3_filesystem()
    first = [i for i in order if rels[i] != last]
    if first:
        fs.put([str(files[i]) for i in first], [f"{base}/{rels[i]}" for i in first])
    for i in order[len(first) :]:
        fs.put_file(str(files[i]), f"{base}/{rels[i]}")
    return [f"s3://{base}/{r}" for r in rels]


def upload_file(path: Path, url: str) -> str:
    """Upload one local file to ``url`` (an ``s3://`` object that must not exist yet)."""
    fs = s3_filesystem()
    target = url[len("s3://") :]
    if fs.exists(target):
        raise FileExistsError(f"{url} already exists")
    fs.put_file(str(path), target)  # multipart for large files
    return url
