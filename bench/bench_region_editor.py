"""The region editor's first paint on a 60-minute recording: server side and in Chromium.

``python -m bench region_editor`` prints the figures and rewrites the ``region_editor`` section of
BENCHMARKS.md.

A 60-minute 16 kHz mono 16-bit recording (faint noise with a tone burst every few seconds, fixed
seed) in a ``regions`` project, one annotator.

- Server: ``recording_peaks`` cold (computed from the audio and written to the cache) and warm (read
  from the cache), each with the conversion to what the page sends (``levels``), and the size of that
  payload as JSON.
- Chromium: the Label page is opened afresh, signed in, and the editor records ``performance.now()``
  when the waveform first reaches its canvas (``window.__earmarkRegionsPainted``, milliseconds since
  the navigation started). The first load, timed from the Sign in click, computes the peaks; the
  median is of fresh navigations after it, split at the moment the page's title is in the document
  (Streamlit's own start, before the editor). Target: ≤ 2 s.
- Baseline, same recording, same run: the same app with the peaks at one bucket per 10 ms (360,000
  min/max pairs, what a page sending "full resolution" sends), started as a second server.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

from analysis.region_signal import waveform_peaks
from bench._report import machine, write_section
from db.engine import Database
from db.migrate import upgrade
from labeling.data.importer import import_path
from labeling.data.projects import create_project
from labeling.data.region_peaks import peaks_file, recording_peaks, samples_per_bucket
from labeling.platform.auth import add_user
from labeling.platform.config import Settings
from labeling.platform.workspace import Workspace
from pages.labeling.region_editor import levels

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("EARMARK_CHROMIUM", "/usr/bin/chromium"))
MINUTES = 60
SR = 16000
RUNS = 5
TARGET_S = 2.0
BASELINE_BUCKET_S = 0.01
PASSWORD = "correct horse"
# The app's own server, with the peaks' bucket count set before the app first runs (the baseline).
LAUNCH = (
    "import sys, labeling.data.region_peaks as rp\n"
    "if sys.argv[1] != '-': rp.MAX_BUCKETS = int(sys.argv[1])\n"
    "from streamlit.web.cli import main\n"
    "sys.argv = ['streamlit', 'run', 'app.py'] + sys.argv[2:]\n"
    "sys.exit(main())\n"
)


def long_recording(path: Path) -> None:
    rng = np.random.default_rng(0)
    block = 10 * SR
    t = np.arange(block) / SR
    with sf.SoundFile(str(path), "w", samplerate=SR, channels=1, subtype="PCM_16") as f:
        for _ in range(MINUTES * 6):
            y = 0.003 * rng.standard_normal(block)
            for start in rng.uniform(0, 9, 3):
                a, b = int(start * SR), int((start + rng.uniform(0.3, 1.0)) * SR)
                y[a:b] += 0.3 * np.sin(2 * np.pi * rng.uniform(120, 400) * t[: b - a])
            f.write(y.astype(np.float32))


def workspace(tmp: Path, audio: Path) -> Workspace:
    url = f"sqlite:///{tmp / 'bench.db'}"
    db = Database.from_url(url)
    upgrade(db)
    db.dispose()
    ws = Workspace.open(Settings(data_dir=tmp, database_url=url))
    with ws.db.write() as s:
        create_project(
            s, name="long", task_kind="regions", classes=["speech", "noise"], annotations_per_clip=1
        )
        add_user(s, name="ana", role="annotator", password=PASSWORD)
    import_path(ws, audio.parent, "long", create=False)
    return ws


def server_side(ws: Workspace, audio: Path, runs: int) -> dict[str, float]:
    key = "hour"
    cache = Path(tempfile.mkdtemp(dir=ws.settings.data_dir))
    spp = samples_per_bucket(sf.info(str(audio)).frames)
    cold, warm, size = [], [], 0
    for _ in range(runs):
        peaks_file(cache, key, spp).unlink(missing_ok=True)
        start = time.perf_counter()
        p = recording_peaks(audio, storage_key=key, cache_dir=cache)
        levels(p.min), levels(p.max)
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        p = recording_peaks(audio, storage_key=key, cache_dir=cache)
        payload = {"mins": levels(p.min), "maxs": levels(p.max)}
        warm.append(time.perf_counter() - start)
        size = len(json.dumps(payload))
    base = []
    for _ in range(runs):
        start = time.perf_counter()
        b = waveform_peaks(audio, samples_per_pixel=round(BASELINE_BUCKET_S * SR))
        payload = {"mins": levels(b.min), "maxs": levels(b.max)}
        base.append(time.perf_counter() - start)
    return {
        "cold": statistics.median(cold),
        "warm": statistics.median(warm),
        "buckets": len(p.min),
        "bytes": size,
        "baseline": statistics.median(base),
        "baseline_buckets": len(b.min),
        "baseline_bytes": len(json.dumps(payload)),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(ws: Workspace, max_buckets: int | None, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "EARMARK_DATA_DIR": str(ws.settings.data_dir),
        "EARMARK_DATABASE_URL": ws.settings.database_url,
    }
    args = ["--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1"]
    args += ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, str(max_buckets) if max_buckets else "-", *args],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(log.read_text())


# When the page's title is first in the document: Streamlit's own start and the script up to the
# editor, the part of the wait that is not the editor's.
TITLE_SEEN = """
new MutationObserver((_, observer) => {
  if (document.querySelector("h1")) {
    window.__titleSeen = performance.now();
    observer.disconnect();
  }
}).observe(document, { childList: true, subtree: true });
"""


def first_paints(browser, url: str, runs: int) -> tuple[float, list[float], list[float]]:  # type: ignore[no-untyped-def]
    """From Sign in to the first paint (peaks computed); then, for fresh loads, the paint and the title
    seen, in seconds since navigation."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(180_000)  # a server started afresh on a busy machine
    context.add_init_script(TITLE_SEEN)
    page = context.new_page()
    page.goto(url)
    page.get_by_role("textbox", name="Name").fill("ana")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    clicked = page.evaluate("performance.now()")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_function("window.__earmarkRegionsPainted !== undefined", timeout=300_000)
    cold = (page.evaluate("window.__earmarkRegionsPainted") - clicked) / 1000
    warm, title = [], []
    for _ in range(runs):
        page.goto(url)
        page.wait_for_function("window.__earmarkRegionsPainted !== undefined", timeout=300_000)
        warm.append(page.evaluate("window.__earmarkRegionsPainted") / 1000)
        title.append(page.evaluate("window.__titleSeen") / 1000)
    context.close()
    return cold, warm, title


def browser_side(tmp: Path, ws: Workspace, runs: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        for name, buckets in (("ours", None), ("baseline", round(MINUTES * 60 / BASELINE_BUCKET_S))):
            proc, url = start_server(ws, buckets, tmp / f"streamlit-{name}.log")
            try:
                cold, warm, title = first_paints(browser, url, runs)
            finally:
                proc.terminate()
                proc.wait(30)
            out[f"{name}_cold"] = cold
            out[f"{name}_warm"] = statistics.median(warm)
            out[f"{name}_title"] = statistics.median(title)
        browser.close()
    return out


def report(server: dict[str, float], page: dict[str, float], took: float) -> str:
    met = "met" if page["ours_warm"] <= TARGET_S else "**missed**"
    load = os.getloadavg()[0]
    return f"""## Region editor: first paint of a 60-minute recording (`bench/bench_region_editor.py`)

{machine()}; bench took {took:.0f} s; load average {load:.1f} at the end (other work shared the cores).

A 60-minute 16 kHz mono recording. Ours sends {server["buckets"]:,} min/max buckets
({server["bytes"] / 1024:,.0f} KiB of JSON); the baseline sends one bucket per 10 ms,
{server["baseline_buckets"]:,} buckets ({server["baseline_bytes"] / 1024:,.0f} KiB). Median of {RUNS} runs.

Server side (peaks and the payload the page sends):

| | ours | baseline (10 ms buckets, computed) | ours / baseline |
|---|---:|---:|---:|
| peaks computed (cold cache) | {server["cold"]:.2f} s | {server["baseline"]:.2f} s | {server["cold"] / server["baseline"]:.2f} |
| peaks from the cache (warm) | {server["warm"] * 1000:.0f} ms | | |

In Chromium, from navigation to the waveform on the editor's canvas (measured by the page):

| | ours | baseline (10 ms buckets) | ours / baseline |
|---|---:|---:|---:|
| first load, from Sign in (peaks computed) | {page["ours_cold"]:.2f} s | {page["baseline_cold"]:.2f} s | {page["ours_cold"] / page["baseline_cold"]:.2f} |
| **later loads** (target ≤ {TARGET_S:.0f} s: {met}) | **{page["ours_warm"]:.2f} s** | {page["baseline_warm"]:.2f} s | **{page["ours_warm"] / page["baseline_warm"]:.2f}** |
| of which before the page's title is shown (Streamlit's start) | {page["ours_title"]:.2f} s | {page["baseline_title"]:.2f} s | |
| of which the editor (title to waveform) | {page["ours_warm"] - page["ours_title"]:.2f} s | {page["baseline_warm"] - page["baseline_title"]:.2f} s | {(page["ours_warm"] - page["ours_title"]) / (page["baseline_warm"] - page["baseline_title"]):.2f} |
"""


def main() -> None:
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        src = tmp / "src"
        src.mkdir()
        audio = src / "hour.wav"
        long_recording(audio)
        ws = workspace(tmp / "data", audio)
        try:
            server = server_side(ws, audio, RUNS)
            print(server, flush=True)
            page = browser_side(tmp, ws, RUNS)
            print(page, flush=True)
        finally:
            ws.close()
    markdown = report(server, page, time.perf_counter() - began)
    print(markdown)
    write_section("region_editor", markdown)


if __name__ == "__main__":
    main()
