"""Small real audio files for tests, written with soundfile (never our own code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def tone(seconds: float = 0.5, sr: int = 16000, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, y: np.ndarray, sr: int = 16000, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, subtype=subtype)
    return path


def speechlike(seed: int, seconds: float = 0.6, sr: int = 16000) -> np.ndarray:
    """Distinct audio per seed: a short tone burst between silences, so every file has unique bytes."""
    rng = np.random.default_rng(seed)
    y = np.zeros(round(seconds * sr), dtype=np.float32)
    start, stop = round(0.1 * sr), round((seconds - 0.1) * sr)
    t = np.arange(stop - start) / sr
    y[start:stop] = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 400) * t) + 0.01 * rng.standard_normal(len(t))
    return y
