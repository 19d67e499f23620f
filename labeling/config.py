"""Configuration from the environment: ``Settings.from_env()``.

=============================  ==============================================================
``EARMARK_DATA_DIR``           where audio, caches and the default database live
                               (default ``./earmark-data``)
``EARMARK_DATABASE_URL``       SQLAlchemy URL (default ``sqlite:///<data dir>/earmark.db``);
                               PostgreSQL: ``postgresql+psycopg://user@host:5432/earmark``
``EARMARK_SECRET``             secret for signing login sessions (required for multi-user use)
``EARMARK_TRUSTED_HEADER``     name of a reverse-proxy header carrying the user name (off by default)
=============================  ==============================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret: str | None = None
    trusted_header: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("EARMARK_DATA_DIR") or "earmark-data").expanduser().resolve()
        url = env.get("EARMARK_DATABASE_URL") or f"sqlite:///{data_dir / 'earmark.db'}"
        return cls(
            data_dir=data_dir,
            database_url=url,
            secret=env.get("EARMARK_SECRET") or None,
            trusted_header=env.get("EARMARK_TRUSTED_HEADER") or None,
        )

    @property
    def audio_dir(self) -> Path:
        return self.data_dir / "audio"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"
