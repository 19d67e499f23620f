"""Team settings: a shared database needs one session secret for every app server; the audio URL and
its cache bound come from the environment."""

from __future__ import annotations

import pytest

from labeling.platform.auth import session_secret
from labeling.platform.config import ConfigError, Settings
from labeling.platform.storage import AudioStore, S3AudioStore, open_store

PG = "postgresql+psycopg://earmark@db.internal:5432/earmark"


def test_a_shared_database_without_a_secret_is_refused_with_the_fix(tmp_path):
    settings = Settings.from_env({"EARMARK_DATA_DIR": str(tmp_path), "EARMARK_DATABASE_URL": PG})
    with pytest.raises(ConfigError, match=r"EARMARK_SECRET is not set.*same secret"):
        settings.require_secret()
    with pytest.raises(ConfigError, match="EARMARK_SECRET"):
        session_secret(settings)
    assert not (tmp_path / ".session-secret").exists()  # no per-server secret was made up


def test_sqlite_keeps_its_secret_in_the_data_folder(tmp_path):
    settings = Settings.from_env({"EARMARK_DATA_DIR": str(tmp_path)})
    settings.require_secret()
    assert session_secret(settings) == session_secret(settings)
    shared = Settings.from_env(
        {"EARMARK_DATA_DIR": str(tmp_path), "EARMARK_DATABASE_URL": PG, "EARMARK_SECRET": "s3cr3t"}
    )
    shared.require_secret()
    assert session_secret(shared) == "s3cr3t"


def test_the_cache_bound_must_be_a_positive_whole_number(tmp_path):
    for bad in ("lots", "0", "-5"):
        with pytest.raises(ConfigError, match="EARMARK_AUDIO_CACHE_MB"):
            Settings.from_env({"EARMARK_DATA_DIR": str(tmp_path), "EARMARK_AUDIO_CACHE_MB": bad})


def test_store_urls(tmp_path):
    assert isinstance(open_store(tmp_path / "audio", cache_dir=tmp_path / "c"), AudioStore)
    with pytest.raises(ValueError, match="unsupported audio store"):
        open_store("gs://bucket/audio", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="needs a bucket"):
        S3AudioStore("s3://", cache_dir=tmp_path / "c", fs=object())
    store = S3AudioStore("s3://bucket/team/audio/", cache_dir=tmp_path / "c", fs=object())
    key = "ab/" + "ab" * 32 + ".wav"
    assert store.location(key) == f"s3://bucket/team/audio/{key}"
    with pytest.raises(ValueError, match="not a storage key"):
        store.location("../../etc/passwd")
