"""The handle every service, page and command works through: ``Workspace.open()``.

It holds this process's one database (engine + session factories), the audio store and the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from db.engine import Database
from db.migrate import SchemaOutOfDate, require_current_schema
from labeling.platform.config import ConfigError, Settings
from labeling.platform.storage import AudioStorage, open_store

# SchemaOutOfDate: what Workspace.open raises when the database needs `earmark db upgrade` first.
__all__ = ["DataDirError", "SchemaOutOfDate", "Workspace"]


class DataDirError(ConfigError):
    """The data folder cannot be created or written."""


@dataclass(frozen=True)
class Workspace:
    settings: Settings
    db: Database
    store: AudioStorage

    @classmethod
    def open(cls, settings: Settings | None = None, *, require_schema: bool = True) -> Workspace:
        """Connect to the configured database; refuse an out-of-date schema unless told not to."""
        settings = settings or Settings.from_env()
        try:
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # not world-readable
        except OSError as exc:
            raise DataDirError(
                f"the data folder {settings.data_dir} cannot be created ({exc.strerror or exc}); "
                "set EARMARK_DATA_DIR to a folder this account can write"
            ) from exc
        db = Database.from_url(settings.database_url)
        if require_schema:
            try:
                require_current_schema(db)
            except BaseException:
                db.dispose()
                raise
        try:
            store = open_store(
                settings.audio_location,
                cache_dir=settings.cache_dir / "audio",
                cache_bytes=settings.audio_cache_mb * 2**20,
            )
        except BaseException:
            db.dispose()
            raise
        return cls(settings=settings, db=db, store=store)

    def close(self) -> None:
        self.db.dispose()
