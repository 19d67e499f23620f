"""Audio in an S3-compatible object store (moto's real server over HTTP): import, playback, features,
augmentation and export give the same results as with the local folder store."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
import soundfile as sf
from sqlalchemy import select

from db.models import Clip
from labeling.annotate.annotations import label_task
from labeling.data.augment import Recipe, augment_slice
from labeling.data.export import ExportError, export_frame, export_project
from labeling.data.features import project_features
from labeling.data.importer import import_path
from labeling.platform.auth import add_user
from labeling.platform.config import Settings
from labeling.platform.storage import S3AudioStore, s3_filesystem
from tests.audio import speechlike, write_wav
from tests.conftest import make_workspace

PATTERN = r"(?P<label>[a-z]+)_(?P<speaker>spk\d)_\d+\.wav"


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    for i in range(8):
        write_wav(src / f"{['yes', 'no'][i % 2]}_spk{i % 4}_{i}.wav", speechlike(i, seconds=0.4), sr=8000)
    return src


@pytest.fixture
def stores(tmp_path, sqlite_url, s3_audio_url, source):
    """The same audio imported into a local-folder workspace and an object-store workspace."""
    local = make_workspace(tmp_path / "local", sqlite_url)
    remote = make_workspace(
        tmp_path / "remote", f"sqlite:///{tmp_path / 'remote.db'}", audio_url=s3_audio_url
    )
    for ws in (local, remote):
        import_path(ws, source, "demo", pattern=PATTERN)
    yield local, remote
    local.close()
    remote.close()


def _clips(ws) -> pd.DataFrame:
    with ws.db.read() as s:
        rows = s.execute(
            select(Clip.sha256, Clip.storage_key, Clip.original_name, Clip.duration_s, Clip.split).order_by(
                Clip.sha256
            )
        ).all()
    return pd.DataFrame(rows)


def test_import_stores_the_same_content_addressed_objects(stores, source):
    local, remote = stores
    assert isinstance(remote.store, S3AudioStore)
    pd.testing.assert_frame_equal(_clips(local), _clips(remote))
    assert sorted(remote.store.iter_keys()) == sorted(local.store.iter_keys())
    # The objects hold the imported bytes, under the key their SHA-256 names.
    fs = s3_filesystem()
    for key in remote.store.iter_keys():
        body = fs.cat_file(remote.store.location(key).removeprefix("s3://"))
        assert hashlib.sha256(body).hexdigest() == key.split("/")[1].split(".")[0]
    originals = {hashlib.sha256(p.read_bytes()).hexdigest() for p in source.glob("*.wav")}
    assert set(_clips(remote)["sha256"]) == originals


def test_objects_are_written_once(stores):
    _, remote = stores
    data = (next(iter(_clips(remote)["storage_key"])), None)[0]
    key = data
    original = remote.store.read_bytes(key)
    # Storing the same bytes again creates nothing; the object is untouched.
    again_key, created = remote.store.put(original, "wav")
    assert (again_key, created) == (key, False)
    # A write to an existing key is refused by the store itself (If-None-Match), not just skipped by us.
    with pytest.raises(FileExistsError):
        s3_filesystem().pipe_file(remote.store.location(key).removeprefix("s3://"), b"other", IfNoneMatch="*")
    assert s3_filesystem().cat_file(remote.store.location(key).removeprefix("s3://")) == original


def test_playback_reads_a_cached_copy_and_the_cache_stays_bounded(tmp_path, stores):
    local, remote = stores
    with local.db.write() as s:
        uid = add_user(s, name="ana", role="annotator").id
    with remote.db.write() as s:
        rid = add_user(s, name="ana", role="annotator").id
    with local.db.read() as s, remote.db.read() as r:
        first = s.scalar(select(Clip.id).order_by(Clip.sha256))
        rfirst = r.scalar(select(Clip.id).order_by(Clip.sha256))
        a = label_task(s, local.store, 1, uid, first)
        b = label_task(r, remote.store, 1, rid, rfirst)
    assert b.audio_path.read_bytes() == a.audio_path.read_bytes()
    assert b.audio_path.is_relative_to(remote.settings.cache_dir)
    # A cached copy plays without the store: remove the object and play again.
    key = b.audio_path.relative_to(remote.settings.cache_dir / "audio").as_posix()
    s3_filesystem().rm_file(remote.store.location(key).removeprefix("s3://"))
    assert remote.store.path(key).read_bytes() == a.audio_path.read_bytes()

    # A cache bounded to about three clips never holds much more, and keeps the newest.
    keys = sorted(local.store.iter_keys())
    keys.remove(key)
    sizes = [local.store.path(k).stat().st_size for k in keys]
    small = S3AudioStore(remote.store.url, cache_dir=tmp_path / "small-cache", cache_bytes=3 * max(sizes))
    for k in keys:
        assert small.path(k).read_bytes() == local.store.path(k).read_bytes()
    cached = [p for p in (tmp_path / "small-cache").glob("??/*") if p.is_file()]
    assert sum(p.stat().st_size for p in cached) <= 3 * max(sizes)
    assert (tmp_path / "small-cache" / keys[-1]).is_file()
    assert len(cached) < len(keys)


def test_features_and_augmentation_match_the_local_store(stores):
    local, remote = stores
    a, b = project_features(local, 1), project_features(remote, 1)
    assert _clips(local)["storage_key"].tolist() == _clips(remote)["storage_key"].tolist()
    # Same clips in the same order (ids may differ only if imports did; compare by content).
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))

    made = []
    for ws in (local, remote):
        report = augment_slice(ws, "demo", recipe=Recipe("car", snr_db=10.0))
        with ws.db.read() as s:
            made.append(sorted(s.scalars(select(Clip.storage_key).where(Clip.id.in_(report.clip_ids))).all()))
    assert made[0] == made[1]
    assert made[0]
    for key in made[1]:
        assert remote.store.exists(key)
        y, sr = sf.read(remote.store.path(key))
        z, _ = sf.read(local.store.path(key))
        assert sr == 8000
        assert (y == z).all()


def _manifest(folder):
    data = json.loads((folder / "MANIFEST.json").read_text())
    return sorted((f["path"], f["sha256"]) for f in data["files"] if f["path"] != "metadata.csv")


def test_export_to_a_folder_and_to_an_s3_prefix(tmp_path, stores, s3_server):
    local, remote = stores
    export_project(local, "demo", fmt="csv", out=tmp_path / "from-local")
    export_project(remote, "demo", fmt="csv", out=tmp_path / "from-remote")
    assert _manifest(tmp_path / "from-local") == _manifest(tmp_path / "from-remote")
    for path, sha in _manifest(tmp_path / "from-remote"):
        assert hashlib.sha256((tmp_path / "from-remote" / path).read_bytes()).hexdigest() == sha

    # Referenced audio points into the bucket.
    with remote.db.read() as s:
        frame = export_frame(s, remote.store, 1)
    assert all(p.startswith(remote.store.url + "/") for p in frame["audio_path"])

    target = f"s3://{s3_server.new_bucket()}/exports/demo-csv"
    report = export_project(remote, "demo", fmt="csv", out=target)
    assert report.out == target
    fs = s3_filesystem()
    uploaded = {p.split("/exports/demo-csv/", 1)[1] for p in fs.find(target.removeprefix("s3://"))}
    local_files = {
        p.relative_to(tmp_path / "from-remote").as_posix()
        for p in (tmp_path / "from-remote").rglob("*")
        if p.is_file()
    }
    assert uploaded == local_files
    with pytest.raises(ExportError, match="already holds objects"):
        export_project(remote, "demo", fmt="csv", out=target)


def test_the_audio_url_comes_from_the_environment(tmp_path, s3_audio_url):
    settings = Settings.from_env(
        {"EARMARK_DATA_DIR": str(tmp_path), "EARMARK_AUDIO_URL": s3_audio_url, "EARMARK_AUDIO_CACHE_MB": "64"}
    )
    assert settings.audio_location == s3_audio_url
    assert settings.audio_cache_mb == 64
    assert Settings.from_env({"EARMARK_DATA_DIR": str(tmp_path)}).audio_location == str(tmp_path / "audio")


def test_the_export_command_writes_to_an_s3_prefix(stores, s3_server, monkeypatch, capsys):
    from labeling.cli import main

    _, remote = stores
    monkeypatch.setenv("EARMARK_DATA_DIR", str(remote.settings.data_dir))
    monkeypatch.setenv("EARMARK_DATABASE_URL", remote.settings.database_url)
    monkeypatch.setenv("EARMARK_AUDIO_URL", remote.store.url)
    target = f"s3://{s3_server.new_bucket()}/run-7"
    assert main(["export", "--project", "demo", "--format", "jsonl", "--out", target]) == 0
    assert f"to {target}" in capsys.readouterr().out
    manifest = json.loads(s3_filesystem().cat_file(f"{target.removeprefix('s3://')}/MANIFEST.json"))
    assert manifest["clips"] == 8
    assert main(["export", "--project", "demo", "--format", "jsonl", "--out", target]) == 1
    assert "already holds objects" in capsys.readouterr().err


def test_orphaned_objects_are_swept_on_both_stores_after_their_grace(stores, tmp_path):
    from labeling.data.leftovers import sweep_orphan_audio
    from labeling.data.projects import ProjectNotFound

    extra = tmp_path / "extra"
    for i in range(3):
        write_wav(extra / f"x{i}.wav", speechlike(50 + i, seconds=0.4), sr=8000)
    for ws in stores:
        before = set(ws.store.iter_keys())
        with pytest.raises(ProjectNotFound):
            import_path(ws, extra, "nowhere", create=False)  # fails after storing its three files
        left = set(ws.store.iter_keys()) - before
        assert len(left) == 3
        assert all(ws.store.age_seconds(k) is not None for k in left)
        assert sweep_orphan_audio(ws.db, ws.store) == []  # younger than the grace period
        assert set(sweep_orphan_audio(ws.db, ws.store, grace_s=0)) == left
        assert set(ws.store.iter_keys()) == before


def test_a_large_file_is_streamed_into_either_store(stores, tmp_path):
    from labeling.platform.storage import sha256_file

    big = tmp_path / "big.wav"
    write_wav(big, speechlike(7, seconds=700.0), sr=16000)  # 22 MB: a multipart upload on S3
    assert big.stat().st_size > 20 * 2**20
    digest = sha256_file(big)
    assert digest == hashlib.sha256(big.read_bytes()).hexdigest()
    for ws in stores:
        key, created = ws.store.put_file(big, "wav", sha256=digest)
        assert created
        assert ws.store.read_bytes(key) == big.read_bytes()
        assert ws.store.put_file(big, "wav", sha256=digest) == (key, False)


def test_a_store_that_does_not_answer_is_told_apart_from_a_lost_clip(stores, tmp_path):
    import s3fs

    from labeling.data.missing_audio import store_can_be_read
    from tests.s3server import free_port

    local, remote = stores
    key, other, *_ = sorted(local.store.iter_keys())
    for ws in stores:
        assert store_can_be_read(ws.store)  # a clip missing from it would really be gone
        assert not store_can_be_read(ws.store, misses_in_a_row=1)  # not two in a row, though

    # A folder moved away, or a mount point with nothing mounted on it.
    root = local.store.root
    root.rename(tmp_path / "moved")
    assert not local.store.path(key).is_file()
    assert not store_can_be_read(local.store)
    root.mkdir()
    assert not store_can_be_read(local.store)

    # A bucket that is not there, and an endpoint nobody answers at: no file, and no exception.
    gone = S3AudioStore("s3://earmark-no-such-bucket/audio", cache_dir=tmp_path / "gone-cache")
    assert not gone.path(key).is_file()
    assert not store_can_be_read(gone)
    down = S3AudioStore(
        remote.store.url,
        cache_dir=tmp_path / "down-cache",
        fs=s3fs.S3FileSystem(
            endpoint_url=f"http://127.0.0.1:{free_port()}",
            use_listings_cache=False,
            retries=1,
            config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 2},
        ),
    )
    assert not down.path(key).is_file()
    assert not store_can_be_read(down)
    # Having just failed, it is not asked again for each clip: a page of twenty clips waits once.
    asked = []

    class Recording:
        def cat_file(self, path):  # type: ignore[no-untyped-def]
            asked.append(path)
            raise ConnectionError("still down")

    down.fs = Recording()
    assert not down.path(other).is_file()
    assert asked == []
