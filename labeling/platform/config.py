"""Configuration from the environment: ``Settings.from_env()``.

=============================  ==============================================================
``EARMARK_DATA_DIR``           where audio, caches and the default database live
                               (default ``./earmark-data``)
``EARMARK_DATABASE_URL``       SQLAlchemy URL (default ``sqlite:///<data dir>/earmark.db``);
                               PostgreSQL: ``postgresql+psycopg://user@host:5432/earmark``
``EARMARK_AUDIO_URL``          where audio is stored: a folder, or ``s3://bucket/prefix`` in any
                               S3-compatible store (default ``<data dir>/audio``)
``EARMARK_AUDIO_CACHE_MB``     bound of the local read cache of an ``s3://`` store (default 2048)
``EARMARK_SECRET``             secret for signing login sessions; required with a database other
                               than SQLite, so that every app server accepts the same sessions
``EARMARK_TRUSTED_HEADER``     name of a reverse-proxy header carrying the user name (off by default)
``EARMARK_TRUSTED_PROXIES``    addresses or networks of the reverse proxies whose X-Forwarded-For
                               header names the client (comma-separated; none by default)
=============================  ==============================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labeling.platform.clients import Network, ProxyListError, parse_networks


class ConfigError(ValueError):
    """The environment does not describe a usable set-up; the message says what to set."""


def _positive_int(env: os._Environ[str] | dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, not {value}")
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret: str | None = None
    trusted_header: str | None = None
    audio_url: str | None = None
    audio_cache_mb: int = 2048
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("EARMARK_DATA_DIR") or "earmark-data").expanduser().resolve()
        url = env.get("EARMARK_DATABASE_URL") or f"sqlite:///{data_dir / 'earmark.db'}"
        try:
            proxies = parse_networks(env.get("EARMARK_TRUSTED_PROXIES"))
        except ProxyListError as exc:
            raise ConfigError(str(exc)) from None
        return cls(
            data_dir=data_dir,
            database_url=url,
            secret=env.get("EARMARK_SECRET") or None,
            trusted_header=env.get("EARMARK_TRUSTED_HEADER") or None,
            audio_url=env.get("EARMARK_AUDIO_URL") or None,
            audio_cache_mb=_positive_int(env, "EARMARK_AUDIO_CACHE_MB", 2048),
            trusted_proxies=proxies,
        )

    @property
    def audio_location(self) -> str:
        """``EARMARK_AUDIO_URL``, or the data folder's ``audio/``."""
        return self.audio_url or str(self.audio_dir)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def require_secret(self) -> None:
        """Refuse to serve a shared database without ``EARMARK_SECRET``.

        Without it each server would sign sessions with a secret of its own, and people would be
        signed out whenever a load balancer sent them to another server.
        """
        if not self.is_sqlite and not self.secret:
            raise ConfigError(
                "EARMARK_SECRET is not set. With a shared database (EARMARK_DATABASE_URL is not SQLite) "
                "every app server must sign sessions with the same secret: set EARMARK_SECRET to one "
                "long random value on all of them, e.g. from `python -c 'import secrets; "
                "print(secrets.token_hex(32))'`."
            )

    @property
    def audio_dir(self) -> Path:
        return self.data_dir / "audio"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"
