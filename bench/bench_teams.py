"""A team set-up: audio in an S3-compatible object store, two app servers, one PostgreSQL.

The object store is moto's standalone S3 server on this machine (real HTTP, in memory), so the figures
measure Earmark's own overhead plus a local round trip, not a cloud network.

* Import of the FSDD folder (real 8 kHz WAVs) into the S3 store, beside the same import into a local
  folder store in the same run. Target: S3 ≥ 50% of the local files/s.
* The Label page rerun (AppTest, signed in as an annotator) on the S3 store once its clip is in the
  read cache, beside the same rerun on the local store. Target ≤ 150 ms.
* Cold playback of one clip: fetching it from the store into an empty read cache and reading it,
  beside reading the file of the local store. Target ≤ 100 ms.
* 16 annotators split over two processes (two "app servers", each with its own engine) labelling
  through ``labeling.api`` on PostgreSQL until the queue is empty: the queue invariants (0 lost,
  0 duplicated, 0 over k) and the p95 submit latency, beside one annotator alone.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bench._report import machine, write_section
from db.engine import Database
from db.migrate import upgrade
from db.models import Annotation, Clip
from labeling.data.importer import import_path
from labeling.data.projects import create_project
from labeling.platform.auth import add_user, issue_session_token, session_secret
from labeling.platform.config import Settings
from labeling.platform.storage import S3AudioStore
from labeling.platform.workspace import Workspace
from tests.s3server import S3Server, environment

ROOT = Path(__file__).resolve().parents[1]
FSDD = ROOT.parent / "shared" / "data" / "fsdd"
PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"
SCRATCH = ROOT / "bench" / ".cache"
POSTGRES = os.environ.get("EARMARK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
N_ANNOTATORS, N_SERVERS, N_QUEUE_CLIPS, K = 16, 2, 400, 3


def _workspace(tmp: Path, audio_url: str | None) -> Workspace:
    url = f"sqlite:///{tmp / 'bench.db'}"
    db = Database.from_url(url)
    upgrade(db)
    db.dispose()
    return Workspace.open(Settings(data_dir=tmp, database_url=url, audio_url=audio_url))


def _import_rate(server: S3Server, runs: int) -> tuple[float, float, int]:
    rates: dict[str, list[float]] = {"local": [], "s3": []}
    n = 0
    for _ in range(runs):
        for kind in ("local", "s3"):
            with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
                audio = f"s3://{server.new_bucket()}/audio" if kind == "s3" else None
                ws = _workspace(Path(tmp), audio)
                start = time.perf_counter()
                report = import_path(ws, FSDD, "fsdd", pattern=PATTERN)
                rates[kind].append(report.n_imported / (time.perf_counter() - start))
                n = report.n_imported
                ws.close()
    return statistics.median(rates["local"]), statistics.median(rates["s3"]), n


def _server_put_rate(server: S3Server, n: int = 600) -> float:
    """What the S3 server itself accepts: plain boto3 PUTs of FSDD-sized objects from 8 threads."""
    import boto3

    bucket = server.new_bucket()
    client = boto3.client("s3", endpoint_url=server.endpoint)
    body = (sorted((FSDD / "recordings").glob("*.wav"))[0]).read_bytes()
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(lambda i: client.put_object(Bucket=bucket, Key=f"ceiling/{i}.wav", Body=body), range(n))
        )
    return n / (time.perf_counter() - start)


def _label_rerun_ms(tmp: Path, audio_url: str | None, repeat: int) -> float:
    """Median rerun of the Label page (AppTest) once the first run has fetched its clip into the
    read cache (a warm rerun reads the clip from the cache, not from the store)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    ws = _workspace(tmp, audio_url)
    src = tmp / "src"
    src.mkdir()
    for p in sorted((FSDD / "recordings").glob("*.wav"))[:200]:
        (src / p.name).write_bytes(p.read_bytes())
    import_path(ws, src, "fsdd", pattern=PATTERN)
    with ws.db.write() as s:
        uid = add_user(s, name="ana", role="annotator").id
        token = issue_session_token(s, uid, session_secret(ws.settings))
    env = {
        "EARMARK_DATA_DIR": str(tmp),
        "EARMARK_DATABASE_URL": ws.settings.database_url,
        "EARMARK_AUDIO_URL": audio_url,
    }
    st.cache_resource.clear()
    st.cache_data.clear()
    # AppTest installs the page as __main__, which spawned children would run: put it back afterwards.
    main_module = sys.modules["__main__"]
    try:
        with environment(env):
            at = AppTest.from_file(str(ROOT / "pages" / "label.py"), default_timeout=120)
            at.session_state["auth.token"] = token
            at.session_state["app.project"] = "fsdd"
            at.run()  # the first run claims a clip and fetches it into the read cache
            assert not at.exception, at.exception
            assert at.get("audio"), "the label page shows no player"
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                at.run()
                times.append(time.perf_counter() - start)
            return statistics.median(times) * 1000
    finally:
        sys.modules["__main__"] = main_module
        st.cache_resource.clear()
        ws.close()


def _cold_playback_ms(server: S3Server, n: int) -> tuple[float, float, float]:
    """(median ms, p95 ms) of fetching one clip into an empty cache and reading it; local baseline."""
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        bucket = f"s3://{server.new_bucket()}/audio"
        ws = _workspace(Path(tmp), bucket)
        src = Path(tmp) / "src"
        src.mkdir()
        for p in sorted((FSDD / "recordings").glob("*.wav"))[:n]:
            (src / p.name).write_bytes(p.read_bytes())
        import_path(ws, src, "fsdd", pattern=PATTERN)
        keys = list(ws.store.iter_keys())
        cold = []
        for i, key in enumerate(keys):
            store = S3AudioStore(bucket, cache_dir=Path(tmp) / f"cold-{i}")  # an empty cache each time
            start = time.perf_counter()
            store.path(key).read_bytes()
            cold.append(time.perf_counter() - start)
        local = []
        for p in sorted(src.glob("*.wav")):
            start = time.perf_counter()
            p.read_bytes()
            local.append(time.perf_counter() - start)
        ws.close()
    return (
        statistics.median(cold) * 1000,
        float(np.percentile(cold, 95)) * 1000,
        statistics.median(local) * 1000,
    )


# --- 16 annotators over two app servers ------------------------------------------------------------


def _annotate(url: str, names: list[str], out: multiprocessing.Queue) -> None:
    """One app server: its own engine, one thread per annotator, label until the queue is empty."""
    from labeling import api

    client = api.connect(url)
    results: list[tuple[str, int, str, float]] = []
    lock = threading.Lock()

    def annotator(name: str) -> None:
        while (item := client.next_clip("team", name)) is not None:
            start = time.perf_counter()
            res = client.submit(
                "team", name, item.clip_id, label="yes", idempotency_key=f"{name}-{item.clip_id}"
            )
            with lock:
                results.append((name, item.clip_id, res.status, time.perf_counter() - start))

    threads = [threading.Thread(target=annotator, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    out.put(results)


def _queue_run(
    url: str, n_annotators: int, n_servers: int
) -> tuple[list[tuple[str, int, str, float]], float]:
    names = [f"annotator{i:02d}" for i in range(n_annotators)]
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    groups = [names[i::n_servers] for i in range(n_servers)]
    start = time.perf_counter()
    procs = [ctx.Process(target=_annotate, args=(url, g, out)) for g in groups]
    for p in procs:
        p.start()
    results = [r for _ in procs for r in out.get()]
    for p in procs:
        p.join()
    return results, time.perf_counter() - start


def _team_database(admin, name: str, n_annotators: int) -> str:  # type: ignore[no-untyped-def]
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    db = Database.from_url(url)
    upgrade(db)
    with db.write() as s:
        project = create_project(s, name="team", classes=["yes", "no"], annotations_per_clip=K)
        for i in range(n_annotators):
            add_user(s, name=f"annotator{i:02d}", role="annotator")
        for i in range(N_QUEUE_CLIPS):
            sha = uuid.uuid4().hex * 2
            s.add(
                Clip(
                    project_id=project.id,
                    sha256=sha,
                    storage_key=f"{sha[:2]}/{sha}.wav",
                    original_name=f"clip{i:04d}.wav",
                    duration_s=1.0,
                    sample_rate=16000,
                    channels=1,
                    frames=16000,
                    audio_format="WAV",
                    split="train",
                    annotations_needed=K,
                )
            )
    db.dispose()
    return url


def _invariants(url: str, results: list[tuple[str, int, str, float]]) -> dict[str, int]:
    db = Database.from_url(url)
    with db.read() as s:
        stored = set(s.execute(select(Annotation.annotator_id, Annotation.clip_id)).all())
        per_clip = dict(
            s.execute(select(Annotation.clip_id, func.count()).group_by(Annotation.clip_id)).all()
        )
        users = dict(s.execute(text("SELECT name, id FROM users")).all())
        counters = dict(s.execute(select(Clip.id, Clip.annotation_count)).all())
    db.dispose()
    created = {(users[n], c) for n, c, status, _ in results if status == "created"}
    n_created = sum(1 for r in results if r[2] == "created")
    return {
        "submitted": len(results),
        "created": n_created,
        "lost": len(created - stored),
        "duplicated": n_created - len(created) + (len(stored) - len({(u, c) for u, c in stored})),
        "over_k": sum(1 for n in per_clip.values() if n > K),
        "counter_mismatch": sum(1 for c, n in counters.items() if per_clip.get(c, 0) != n),
        "unfilled": sum(1 for c in counters if per_clip.get(c, 0) < K),
    }


def _team_queue() -> tuple[dict[str, int], float, float, float, float]:
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    names = [f"earmark_bench_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    try:
        team_url = _team_database(admin, names[0], N_ANNOTATORS)
        results, seconds = _queue_run(team_url, N_ANNOTATORS, N_SERVERS)
        checks = _invariants(team_url, results)
        solo_url = _team_database(admin, names[1], 1)
        solo, _ = _queue_run(solo_url, 1, 1)
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    team_p95 = float(np.percentile([r[3] for r in results], 95)) * 1000
    solo_p95 = float(np.percentile([r[3] for r in solo], 95)) * 1000
    return checks, team_p95, solo_p95, seconds, statistics.median(r[3] for r in results) * 1000


def main() -> None:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    server = S3Server.start()
    try:
        with environment(server.environ()):
            local_rate, s3_rate, n_files = _import_rate(server, runs=3)
            ceiling = statistics.median(_server_put_rate(server) for _ in range(3))
            print(f"import: local {local_rate:.0f} files/s, s3 {s3_rate:.0f} files/s", flush=True)
            # Rounds alternate between the stores, so load that comes and goes hits both alike.
            reruns: dict[str, list[float]] = {"local": [], "s3": []}
            for _ in range(3):
                for kind in ("local", "s3"):
                    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
                        audio = f"s3://{server.new_bucket()}/audio" if kind == "s3" else None
                        reruns[kind].append(_label_rerun_ms(Path(tmp), audio, repeat=15))
            rerun_local, rerun_s3 = statistics.median(reruns["local"]), statistics.median(reruns["s3"])
            print(f"label rerun: local {rerun_local:.0f} ms, s3 {rerun_s3:.0f} ms", flush=True)
            cold_median, cold_p95, local_read = _cold_playback_ms(server, n=40)
            print(f"cold playback: median {cold_median:.1f} ms, p95 {cold_p95:.1f} ms", flush=True)
    finally:
        server.stop()
    checks, team_p95, solo_p95, seconds, team_median = _team_queue()
    print(f"team queue: {checks}, p95 {team_p95:.1f} ms (alone {solo_p95:.1f} ms)", flush=True)

    ok = checks["lost"] == checks["duplicated"] == checks["over_k"] == checks["counter_mismatch"] == 0
    write_section(
        "teams",
        f"""
## Teams: object storage and two app servers (`bench/bench_teams.py`)

{machine()}; the object store is moto's S3 server on this machine (HTTP on loopback, in memory).
Medians (the Label page: the median of three alternating rounds of 15 reruns each), each beside a
baseline measured in the same run.

| Measure | Result | Baseline (same run) | Ratio | Target |
|---|---|---|---|---|
| FSDD import ({n_files:,} files), S3 store | {s3_rate:,.0f} files/s | local folder store: {local_rate:,.0f} files/s | {s3_rate / local_rate:.2f}× | ≥ 0.5× {"✓" if s3_rate >= 0.5 * local_rate else "✗ missed"} |
| (the same import as a share of what the S3 server accepts at all: bare boto3 PUTs, 8 threads) | {s3_rate:,.0f} files/s | moto: {ceiling:,.0f} PUT/s | {s3_rate / ceiling:.2f}× | — |
| Label page rerun, S3 store, warm cache | {rerun_s3:.0f} ms | local store: {rerun_local:.0f} ms | {rerun_s3 / rerun_local:.2f}× | ≤ 150 ms {"✓" if rerun_s3 <= 150 else "✗ missed"} |
| Cold playback of one clip (fetch into an empty cache + read) | {cold_median:.1f} ms (p95 {cold_p95:.1f} ms) | local file read: {local_read:.2f} ms | — | ≤ 100 ms {"✓" if cold_median <= 100 else "✗ missed"} |
| 16 annotators over 2 app processes, PostgreSQL, k = {K}, {N_QUEUE_CLIPS} clips until empty: submit | p95 {team_p95:.1f} ms (median {team_median:.1f} ms) | one annotator alone: p95 {solo_p95:.1f} ms | {team_p95 / solo_p95:.2f}× | reported |

Queue invariants after {checks["submitted"]:,} submissions ({checks["created"]:,} stored, {seconds:.0f} s):
{checks["lost"]} lost, {checks["duplicated"]} duplicated, {checks["over_k"]} over k, {checks["counter_mismatch"]} clip
counters off, {checks["unfilled"]} clips left short of k — {"all hold" if ok and not checks["unfilled"] else "VIOLATED"}.
Each "app server" is a process with its own engine and eight annotator threads calling
`labeling.api` (`next_clip`, then `submit`, each its own transaction).
""",
    )


if __name__ == "__main__":
    main()
