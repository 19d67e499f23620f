"""Peak memory of importing one long recording: a one-hour 48 kHz mono 16-bit WAV (330 MiB).

Each measurement runs in a fresh child process and reports its peak resident set (``ru_maxrss``), so
nothing else in this process counts. Baseline, measured in the same run: the child that only decodes
the file whole (``soundfile.read``, float32), the least any import that holds the samples at once
needs. The import decodes, measures and stores in blocks, so its peak should stay far below that.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from bench._report import machine, write_section

SR = 48_000
SECONDS = 3600


def _write_long_wav(path: Path) -> None:
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16", format="WAV") as f:
        t = np.arange(SR * 60) / SR
        minute = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
        for _ in range(SECONDS // 60):
            f.write(minute)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _decode_whole(path: str, out) -> None:
    y, _ = sf.read(path, dtype="float32")
    out.put((_peak_mib(), len(y)))


def _import(path: str, data_dir: str, out) -> None:
    from labeling import api
    from labeling.data.importer import import_path

    with api.connect(data_dir=data_dir, upgrade=True) as client:
        started = time.perf_counter()
        report = import_path(client.workspace, Path(path).parent, "long")
        out.put((_peak_mib(), report.n_imported, time.perf_counter() - started))


def _child(target, *args) -> tuple:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, out))
    p.start()
    result = out.get(timeout=1800)
    p.join(timeout=60)
    return result


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="earmark-bench-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        wav = src / "one-hour.wav"
        _write_long_wav(wav)
        size_mib = wav.stat().st_size / 2**20
        whole_mib, frames = _child(_decode_whole, str(wav))
        import_mib, n, seconds = _child(_import, str(wav), str(Path(tmp) / "data"))
    print(f"decode whole: {whole_mib:.0f} MiB; import: {import_mib:.0f} MiB ({n} clip, {seconds:.1f} s)")
    write_section(
        "import_memory",
        "\n".join(
            [
                "## Import memory (`bench/bench_import_memory.py`)",
                "",
                f"One {SECONDS // 3600}-hour {SR // 1000} kHz mono 16-bit WAV ({size_mib:.0f} MiB, {frames:,} "
                f"samples), peak resident memory of a fresh process. {machine()}.",
                "",
                "| what | peak RSS (MiB) | vs decoding it whole |",
                "|---|---:|---:|",
                f"| decode it whole (`soundfile.read`, float32): baseline | {whole_mib:.0f} | 1.00× |",
                f"| `earmark import` of the folder holding it ({seconds:.0f} s) | {import_mib:.0f} | "
                f"{import_mib / whole_mib:.2f}× |",
            ]
        ),
    )


if __name__ == "__main__":
    main()
