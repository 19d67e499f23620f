"""The demo corpus: ten spoken command words in several English accents, with realistic noise.

Call :func:`synthesize_demo_corpus` to write the WAV files of a batch and get their metadata, one row
per file. :func:`demo_corpus_plan` gives the same rows without any audio (for counts and previews),
:func:`demo_tag_groups` the tag vocabulary, and :data:`DEMO_CLASSES` the ten words.

The speech is real synthetic speech from espeak-ng, loaded through ctypes from the shared library that
the ``espeakng-loader`` package ships (``pip install 'earmark[demo]'``), so nothing is downloaded and no
program is run. Each speaker is an espeak-ng accent voice with one of its voice variants; teenagers
speak with a higher pitch and a shorter vocal tract (all frequencies scaled up, by resampling). The
noise conditions and channels come from :mod:`analysis.augment`.

Everything is deterministic: the same ``random_state``, ``size`` and ``batch`` give byte-identical
files. Two properties of espeak-ng matter for that, and :class:`EspeakSynthesizer` handles both:

- the library keeps synthesis state between utterances (its pitch-flutter phase, for one), which
  neither ``espeak_Terminate`` nor a new ``espeak_Initialize`` resets, so the same text comes out
  slightly different every time it is spoken. Each synthesizer therefore loads its own private copy of
  the library, whose state starts fresh, and a corpus is spoken in a fixed order;
- the library is a process-wide singleton (one callback, one voice, and it sets the C locale), so
  synthesizers in one process take turns through a lock.
"""

from __future__ import annotations

import ctypes
import io
import locale
import math
import os
import shutil
import tempfile
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from analysis.augment import (
    babble_noise,
    car_noise,
    mix_at_snr,
    peak_normalize,
    room_reverb,
    speed_change,
    telephone_channel,
)

__all__ = [
    "DEMO_BATCHES",
    "DEMO_CLASSES",
    "DEMO_COLUMNS",
    "DEMO_SAMPLE_RATE",
    "DEMO_SIZES",
    "DemoSpeaker",
    "EspeakSynthesizer",
    "EspeakUnavailableError",
    "demo_corpus_plan",
    "demo_speakers",
    "demo_tag_groups",
    "speak_as",
    "synthesize_demo_corpus",
]

DEMO_CLASSES: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
DEMO_SAMPLE_RATE = 16_000
DEMO_BATCHES: tuple[str, ...] = ("initial", "production", "teens")

#: Columns of the frame :func:`synthesize_demo_corpus` returns, in order.
DEMO_COLUMNS: tuple[str, ...] = (
    "file_name",
    "label",
    "transcript",
    "speaker",
    "voice",
    "accent",
    "age_group",
    "noise",
    "channel",
    "snr_db",
    "batch",
    "device",
    "tags",
)

#: Accent (as shown to people) -> espeak-ng voice name, all from the data espeak-ng 1.52 ships.
ACCENT_VOICES: dict[str, str] = {
    "us": "en-us",
    "british": "en",
    "scottish": "en-gb-scotland",
    "lancastrian": "en-gb-x-gbclan",
    "west_midlands": "en-gb-x-gbcwmd",
    "caribbean": "en-029",
    "new_york": "en-us-nyc",
}

NOISES: tuple[str, ...] = ("clean", "car", "babble")
CHANNELS: tuple[str, ...] = ("wideband", "telephone", "far_field")
AGE_GROUPS: tuple[str, ...] = ("adult", "teen")

# (accent, age group, espeak variant) per speaker. The initial batch under-represents Caribbean
# English; production brings new people, one of them with an accent the initial batch never had.
_SPEAKER_TABLE: dict[str, tuple[tuple[str, str, str], ...]] = {
    "initial": (
        ("us", "adult", "m1"),
        ("us", "adult", "f2"),
        ("us", "adult", "m5"),
        ("us", "teen", "m3"),
        ("us", "teen", "f4"),
        ("british", "adult", "m2"),
        ("british", "adult", "f1"),
        ("british", "teen", "m6"),
        ("british", "teen", "f3"),
        ("scottish", "adult", "m7"),
        ("scottish", "adult", "f5"),
        ("scottish", "teen", "m4"),
        ("scottish", "teen", "f2"),
        ("lancastrian", "adult", "m3"),
        ("lancastrian", "adult", "f4"),
        ("lancastrian", "teen", "f1"),
        ("west_midlands", "adult", "m6"),
        ("west_midlands", "adult", "f3"),
        ("west_midlands", "teen", "m1"),
        ("caribbean", "adult", "f5"),
        ("caribbean", "teen", "m2"),
    ),
    "production": (
        ("us", "adult", "m4"),
        ("us", "adult", "f3"),
        ("us", "teen", "m7"),
        ("british", "adult", "m5"),
        ("british", "teen", "f5"),
        ("scottish", "adult", "m1"),
        ("lancastrian", "adult", "m2"),
        ("caribbean", "adult", "m8"),
        ("new_york", "adult", "m2"),
        ("new_york", "adult", "f1"),
        ("new_york", "teen", "m5"),
    ),
    # Production traffic from a school pilot: teenagers the initial batch never heard (higher pitch,
    # shorter vocal tracts than the mostly adult initial batch).
    "teens": (
        ("us", "teen", "m2"),
        ("us", "teen", "f1"),
        ("us", "teen", "f5"),
        ("british", "teen", "m3"),
        ("british", "teen", "f4"),
        ("scottish", "teen", "m5"),
        ("lancastrian", "teen", "m4"),
        ("west_midlands", "teen", "f2"),
        ("caribbean", "teen", "f3"),
    ),
}

# How each batch was recorded. Production moves to cars and brings a new far-field device.
_CONDITIONS: dict[str, dict[str, Any]] = {
    "initial": {
        "noise": {"clean": 0.62, "car": 0.22, "babble": 0.16},
        "channel": {"wideband": 0.88, "telephone": 0.12, "far_field": 0.0},
        "snr_db": {20.0: 0.40, 10.0: 0.35, 5.0: 0.25},
    },
    "production": {
        "noise": {"clean": 0.35, "car": 0.50, "babble": 0.15},
        "channel": {"wideband": 0.60, "telephone": 0.10, "far_field": 0.30},
        "snr_db": {20.0: 0.30, 10.0: 0.35, 5.0: 0.35},
    },
}
# The school pilot records on classroom tablets: far-field, with other children talking.
_CONDITIONS["teens"] = {
    "noise": {"clean": 0.30, "car": 0.05, "babble": 0.65},
    "channel": {"wideband": 0.50, "telephone": 0.0, "far_field": 0.50},
    "snr_db": {20.0: 0.20, 10.0: 0.40, 5.0: 0.40},
}

_TAKES_PER_WORD = 4
#: Named sizes: clips per batch. "standard" for the initial batch is every speaker saying every word
#: four times.
DEMO_SIZES: dict[str, dict[str, int]] = {
    "initial": {"tiny": 24, "small": 200, "standard": len(_SPEAKER_TABLE["initial"]) * 10 * _TAKES_PER_WORD},
    "production": {"tiny": 12, "small": 60, "standard": 160},
    "teens": {"tiny": 12, "small": 60, "standard": 120},
}
_MAX_CLIPS = 10_000

# A few takes are short phrases around the command word, so transcripts are not always the label.
_CARRIERS: tuple[str, ...] = ("{} please", "okay {}", "{} again")
_PHRASE_SHARE = 0.06
_CLIPPED_SHARE = 0.015
_BABBLE_SOURCES = 8
#: Threads that mix and write the clips once all are spoken.
RECORDING_THREADS = 2


class EspeakUnavailableError(ImportError):
    """espeak-ng (the ``espeakng-loader`` package) is missing or its library cannot be loaded."""


def _install_hint() -> str:
    return "the demo corpus needs espeak-ng from the espeakng-loader package: pip install 'earmark[demo]'"


# espeak-ng's speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_RATE_MIN, _RATE_MAX = 80, 450
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# espeak-ng is a process-wide singleton (one callback, one current voice, and espeak_Initialize sets
# the C locale): synthesizers take turns. Re-entrant so that one thread may hold two.
_ESPEAK_LOCK = threading.RLock()


# Private copies stay loaded for the life of the process. Unloading a library that other native code
# may have looked into (dlclose) is a classic source of crashes far from the cause, and a copy is
# about a megabyte per corpus synthesised.
_LOADED: list[tuple[ctypes.CDLL, Any]] = []  # with its callback, which the copy still points at


class EspeakSynthesizer:
    """Text to speech with espeak-ng through its C API, one utterance at a time.

    Use as a context manager; while it is open, other synthesizers in the process wait::

        with EspeakSynthesizer() as tts:
            samples = tts.speak("stop", voice="en-gb-scotland+f2", rate=160, pitch=60)

    Each instance loads a private copy of the library, so the sequence of utterances it produces
    depends only on the sequence of requests: two instances given the same requests in the same order
    produce identical samples.

    Raises
    ------
    EspeakUnavailableError
        When ``espeakng-loader`` is not installed or its library or data cannot be loaded.
    """

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise EspeakUnavailableError(_install_hint()) from exc
        self._lib: ctypes.CDLL | None = None
        self._tmpdir: str | None = None
        self._chunks: list[np.ndarray] = []
        self._callback_error: BaseException | None = None
        self._initialized = False
        self._set_seed: Any = None
        _ESPEAK_LOCK.acquire()
        try:
            self._open(espeakng_loader)
        except BaseException:
            self._release()
            raise

    def _open(self, loader: Any) -> None:
        try:
            library_path = Path(loader.get_library_path())
            data_path = Path(loader.get_data_path())
        except (RuntimeError, OSError) as exc:
            raise EspeakUnavailableError(f"{_install_hint()} ({exc})") from exc
        if not library_path.is_file():
            raise EspeakUnavailableError(f"{_install_hint()} (no library at {library_path.name})")
        self._tmpdir = tempfile.mkdtemp(prefix="earmark-espeak-")
        private_copy = Path(self._tmpdir) / library_path.name
        shutil.copyfile(library_path, private_copy)
        try:
            lib = ctypes.CDLL(str(private_copy))
        except OSError as exc:
            raise EspeakUnavailableError(f"{_install_hint()} (cannot load the library: {exc})") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Terminate.restype = ctypes.c_int
        self._set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_seed is not None:
            self._set_seed.argtypes = [ctypes.c_long]
            self._set_seed.restype = None
        self._locale = locale.setlocale(locale.LC_CTYPE)
        self._lib = lib
        # DONT_EXIT: without it a missing data directory makes the library call exit() on the process.
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, os.fsencode(data_path), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EspeakUnavailableError(f"{_install_hint()} (espeak-ng could not read its data)")
        self._initialized = True
        self.sample_rate: int = int(rate)
        # ctypes frees a callback once nothing references it; the library would then call freed
        # memory. Keep it as long as the library (see ``_LOADED``).
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: Any, n_samples: int, _events: Any) -> int:
        # Exceptions cannot cross back into C: remember the first, and ask espeak to stop (return 1).
        try:
            if wav and n_samples > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        except BaseException as exc:
            self._callback_error = exc
            return 1
        return 0

    def speak(
        self,
        text: str,
        *,
        voice: str = "en-us",
        rate: int = 175,
        pitch: int = 50,
        pitch_range: int = 50,
    ) -> np.ndarray:
        """Speak ``text`` and return the samples as float32 in [-1, 1] at :attr:`sample_rate`.

        Parameters
        ----------
        text : str
            Plain text (no SSML); no pause is added at the end.
        voice : str
            An espeak-ng voice name, optionally with a variant: ``"en-gb-scotland"``,
            ``"en-us+f3"``.
        rate : int
            Words per minute, 80-450.
        pitch, pitch_range : int
            0-100 within the voice's own range; 50 is the voice's normal.
        """
        lib = self._lib
        if lib is None:
            raise RuntimeError("this EspeakSynthesizer is closed")
        if not text.strip() or "\x00" in text:
            raise ValueError(f"cannot speak {text!r}")
        if not _RATE_MIN <= rate <= _RATE_MAX:
            raise ValueError(f"rate must be {_RATE_MIN}-{_RATE_MAX} words per minute, got {rate}")
        for name, value in (("pitch", pitch), ("pitch_range", pitch_range)):
            if not 0 <= value <= 100:
                raise ValueError(f"{name} must be 0-100, got {value}")
        # An unknown name returns EE_NOT_FOUND but leaves the previous voice selected: check it.
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        # Parameters outlive voice changes, so set every one for every utterance.
        for parameter, value in (
            (_PARAM_RATE, rate),
            (_PARAM_VOLUME, 100),
            (_PARAM_PITCH, pitch),
            (_PARAM_RANGE, pitch_range),
        ):
            lib.espeak_SetParameter(parameter, int(value), 0)
        encoded = text.encode("utf-8")
        # Breathy variants (the female ones) add noise from espeak-ng's own generator, which it seeds
        # from the clock at start-up: seed it from the request so the same request sounds the same.
        if self._set_seed is not None:
            self._set_seed(zlib.crc32(f"{voice}|{rate}|{pitch}|{pitch_range}|{text}".encode()))
        self._chunks = []
        self._callback_error = None
        status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if self._callback_error is not None:
            raise RuntimeError("collecting espeak-ng's samples failed") from self._callback_error
        if status != _EE_OK or not self._chunks:
            raise RuntimeError(f"espeak-ng could not speak {text!r} with voice {voice!r} (error {status})")
        samples = np.concatenate(self._chunks)
        self._chunks = []
        return (samples.astype(np.float32) / np.float32(32768.0)).astype(np.float32)

    def close(self) -> None:
        """Shut espeak-ng down; this instance's copy of the library stays mapped (see ``_LOADED``)."""
        if self._lib is None and self._tmpdir is None:
            return
        self._release()

    def _release(self) -> None:
        try:
            if self._lib is not None:
                if self._initialized:
                    self._lib.espeak_Terminate()
                _LOADED.append((self._lib, getattr(self, "_callback", None)))
                if locale.setlocale(locale.LC_CTYPE) != self._locale:
                    locale.setlocale(locale.LC_CTYPE, self._locale)
        finally:
            self._lib = None
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None
            _ESPEAK_LOCK.release()

    def __enter__(self) -> EspeakSynthesizer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class DemoSpeaker:
    """One synthetic person: an accent voice, a voice variant, an age group and their habits.

    ``pitch`` and ``rate_wpm`` are espeak-ng settings; ``tract_scale`` multiplies every frequency
    (above 1 is a shorter vocal tract, as a teenager's). ``device`` is what they record wideband
    audio with.
    """

    speaker_id: str
    accent: str
    voice: str
    variant: str
    age_group: str
    pitch: int
    rate_wpm: int
    tract_scale: float
    device: str


def _stable_rng(*keys: object) -> np.random.Generator:
    """A generator seeded by names, so a speaker is the same person whatever the corpus seed."""
    return np.random.default_rng(zlib.crc32("/".join(map(str, keys)).encode()))


def demo_speakers(batch: str = "initial") -> list[DemoSpeaker]:
    """The speakers of a batch; their ids, voices and habits do not depend on any seed."""
    _check_batch(batch)
    speakers = []
    for accent, age_group, variant in _SPEAKER_TABLE[batch]:
        speaker_id = f"{accent}_{age_group}_{variant}"
        rng = _stable_rng("speaker", speaker_id)
        teen = age_group == "teen"
        speakers.append(
            DemoSpeaker(
                speaker_id=speaker_id,
                accent=accent,
                voice=ACCENT_VOICES[accent],
                variant=variant,
                age_group=age_group,
                pitch=int(rng.integers(68, 83) if teen else rng.integers(36, 56)),
                rate_wpm=int(rng.integers(140, 181) if teen else rng.integers(125, 171)),
                tract_scale=round(float(rng.uniform(1.12, 1.20) if teen else rng.uniform(0.95, 1.04)), 3),
                device=str(rng.choice(["headset", "laptop"])),
            )
        )
    return speakers


def speak_as(
    tts: EspeakSynthesizer,
    speaker: DemoSpeaker,
    text: str,
    *,
    rate_factor: float = 1.0,
    pitch_offset: int = 0,
    pitch_range: int = 50,
) -> np.ndarray:
    """Say ``text`` as ``speaker`` and return float64 samples at :data:`DEMO_SAMPLE_RATE`.

    The vocal tract scaling plays espeak-ng's output faster by ``tract_scale``, which raises pitch and
    formants together; the speaking rate asked of espeak-ng is lowered by the same factor so the
    words keep their intended duration.
    """
    rate = speaker.rate_wpm * rate_factor / speaker.tract_scale
    raw = tts.speak(
        text,
        voice=f"{speaker.voice}+{speaker.variant}",
        rate=int(np.clip(round(rate), _RATE_MIN, _RATE_MAX)),
        pitch=int(np.clip(speaker.pitch + pitch_offset, 0, 100)),
        pitch_range=int(np.clip(pitch_range, 0, 100)),
    )
    scaled = speed_change(raw, factor=speaker.tract_scale)
    return speed_change(scaled, factor=tts.sample_rate / DEMO_SAMPLE_RATE)


def demo_tag_groups() -> dict[str, list[str]]:
    """The demo project's tag vocabulary by group; every clip carries exactly one tag of each group."""
    return {
        "noise": [f"noise:{n}" for n in NOISES],
        "channel": [f"channel:{c}" for c in CHANNELS],
        "accent": [f"accent:{a}" for a in ACCENT_VOICES],
        "age": [f"age:{a}" for a in AGE_GROUPS],
    }


def _check_batch(batch: str) -> None:
    if batch not in DEMO_BATCHES:
        raise ValueError(f"batch must be one of {', '.join(DEMO_BATCHES)}; got {batch!r}")


def _n_clips(size: str | int, batch: str) -> int:
    if isinstance(size, str):
        if size not in DEMO_SIZES[batch]:
            raise ValueError(f"size must be one of {', '.join(DEMO_SIZES[batch])} or a number; got {size!r}")
        return DEMO_SIZES[batch][size]
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not 1 <= size <= _MAX_CLIPS:
        raise ValueError(f"size must be a named size or a whole number of clips 1-{_MAX_CLIPS}; got {size!r}")
    return int(size)


def _seed(random_state: int) -> int:
    if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer) or random_state < 0:
        raise ValueError(f"random_state must be a non-negative integer, got {random_state!r}")
    return int(random_state)


def _draw(rng: np.random.Generator, weights: dict[Any, float], n: int) -> list[Any]:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return [keys[i] for i in rng.choice(len(keys), size=n, p=p / p.sum())]


def demo_corpus_plan(
    *, size: str | int = "standard", random_state: int = 0, batch: str = "initial"
) -> pd.DataFrame:
    """What :func:`synthesize_demo_corpus` will produce, one row per clip, without making audio.

    Parameters
    ----------
    size : {"tiny", "small", "standard"} or int
        Number of clips (see :data:`DEMO_SIZES`). A number takes that many clips at random from
        every speaker saying every word, with as many takes as needed.
    random_state : int
        Seeds the choice of clips, each take's rate and pitch, and the conditions.
    batch : {"initial", "production"}
        The first dataset, or a later batch with other speakers and more car and far-field audio.

    Returns
    -------
    DataFrame
        The columns of :data:`DEMO_COLUMNS` followed by the synthesis settings ``take``,
        ``rate_factor``, ``pitch_offset``, ``pitch_range``, ``lead_s``, ``trail_s``, ``peak_dbfs``.
    """
    _check_batch(batch)
    n = _n_clips(size, batch)
    seed = _seed(random_state)
    rng = np.random.default_rng([DEMO_BATCHES.index(batch), seed])
    speakers = demo_speakers(batch)
    takes = math.ceil(n / (len(speakers) * len(DEMO_CLASSES)))
    grid = len(speakers) * len(DEMO_CLASSES) * takes
    chosen = np.sort(rng.choice(grid, size=n, replace=False)) if n < grid else np.arange(grid)
    speaker_ix, rest = np.divmod(chosen, len(DEMO_CLASSES) * takes)
    word_ix, take_ix = np.divmod(rest, takes)

    conditions = _CONDITIONS[batch]
    noise = _draw(rng, conditions["noise"], n)
    channel = _draw(rng, conditions["channel"], n)
    snr = _draw(rng, conditions["snr_db"], n)
    phrase = rng.random(n) < _PHRASE_SHARE
    carrier = rng.integers(0, len(_CARRIERS), n)
    clipped = rng.random(n) < _CLIPPED_SHARE

    rows = []
    for i in range(n):
        speaker = speakers[speaker_ix[i]]
        word = DEMO_CLASSES[word_ix[i]]
        take = int(take_ix[i]) + 1
        device = {"telephone": "phone", "far_field": "smart_speaker"}.get(channel[i], speaker.device)
        name = f"{word}_{speaker.speaker_id}_{take:03d}_{noise[i]}"
        if channel[i] != "wideband":
            name += f"_{channel[i]}"
        rows.append(
            {
                "file_name": f"{name}.wav",
                "label": word,
                "transcript": _CARRIERS[carrier[i]].format(word) if phrase[i] else word,
                "speaker": speaker.speaker_id,
                "voice": speaker.voice,
                "accent": speaker.accent,
                "age_group": speaker.age_group,
                "noise": noise[i],
                "channel": channel[i],
                "snr_db": math.nan if noise[i] == "clean" else float(snr[i]),
                "batch": batch,
                "device": device,
                "tags": [
                    f"noise:{noise[i]}",
                    f"channel:{channel[i]}",
                    f"accent:{speaker.accent}",
                    f"age:{speaker.age_group}",
                ],
                "take": take,
                "rate_factor": round(float(rng.uniform(0.88, 1.12)), 3),
                "pitch_offset": int(rng.integers(-6, 7)),
                "pitch_range": int(rng.integers(35, 71)),
                "lead_s": round(float(rng.uniform(0.05, 0.35)), 3),
                "trail_s": round(float(rng.uniform(0.05, 0.30)), 3),
                # A few recordings were made with the gain too high and clip.
                "peak_dbfs": round(
                    float(rng.uniform(3.0, 6.0) if clipped[i] else rng.uniform(-15.0, -3.0)), 2
                ),
            }
        )
    return pd.DataFrame(rows)


def _to_pcm16(y: np.ndarray) -> np.ndarray:
    return np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16)


def _write_wav(path: Path, y: np.ndarray) -> None:
    # Encoded in memory: libsndfile syncs a file it closes to disk, which cost more than making the
    # clip, and these files are read once by the import and deleted.
    buffer = io.BytesIO()
    sf.write(buffer, _to_pcm16(y), DEMO_SAMPLE_RATE, subtype="PCM_16", format="WAV")
    path.write_bytes(buffer.getvalue())


def synthesize_demo_corpus(
    out_dir: Path,
    *,
    size: str | int = "standard",
    random_state: int = 0,
    batch: str = "initial",
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Write a batch of the demo corpus as mono 16 kHz 16-bit WAV files and return its metadata.

    Every clip is spoken by espeak-ng (see :class:`EspeakSynthesizer`), padded with silence, then
    recorded under its conditions: far-field reverberation, noise mixed at ``snr_db`` (car noise, or
    babble made of other speakers' clips), the telephone channel, and a recording level.

    Parameters
    ----------
    out_dir : Path
        Created if missing; files of the same name are overwritten.
    size, random_state, batch
        As for :func:`demo_corpus_plan`.
    progress : callable(done, total), optional
        Called as work advances. A clip counts twice -- once spoken, once mixed and written -- so
        ``total`` is twice the number of clips.

    Returns
    -------
    DataFrame
        One row per file, columns :data:`DEMO_COLUMNS`: ``file_name``, ``label`` (the command word),
        ``transcript`` (the spoken text), ``speaker``, ``voice`` (espeak-ng voice), ``accent``,
        ``age_group`` (adult/teen), ``noise`` (clean/car/babble), ``channel``
        (wideband/telephone/far_field), ``snr_db`` (NaN when clean), ``batch``, ``device``, ``tags``
        (a list: one ``noise:``, ``channel:``, ``accent:`` and ``age:`` tag).

    Raises
    ------
    EspeakUnavailableError
        When espeak-ng is not installed (``pip install 'earmark[demo]'``).
    """
    plan = demo_corpus_plan(size=size, random_state=random_state, batch=batch)
    seed = _seed(random_state)
    speakers = {s.speaker_id: s for s in demo_speakers(batch)}
    out_dir = Path(out_dir)
    total = 2 * len(plan)
    done = 0

    speech: list[np.ndarray] = []
    with EspeakSynthesizer() as tts:
        for row in plan.itertuples(index=False):
            voice = speak_as(
                tts,
                speakers[row.speaker],
                row.transcript,
                rate_factor=row.rate_factor,
                pitch_offset=row.pitch_offset,
                pitch_range=row.pitch_range,
            )
            lead = np.zeros(round(row.lead_s * DEMO_SAMPLE_RATE))
            trail = np.zeros(round(row.trail_s * DEMO_SAMPLE_RATE))
            speech.append(np.concatenate([lead, voice, trail]))
            done += 1
            if progress is not None:
                progress(done, total)

    out_dir.mkdir(parents=True, exist_ok=True)
    by_speaker = plan["speaker"].to_numpy()
    rows = list(plan.itertuples(index=False))

    def record(i: int) -> None:
        row = rows[i]
        rng = np.random.default_rng([DEMO_BATCHES.index(batch), seed, 1, i])
        y = speech[i]
        if row.channel == "far_field":
            y = room_reverb(
                y,
                sr=DEMO_SAMPLE_RATE,
                rt60=rng.uniform(0.3, 0.8),
                direct_to_reverberant_db=rng.uniform(-3.0, 3.0),
                random_state=rng,
            )
        if row.noise == "car":
            noise = car_noise(len(y), sr=DEMO_SAMPLE_RATE, random_state=rng)
            y = mix_at_snr(y, noise, snr_db=row.snr_db, random_state=rng)
        elif row.noise == "babble":
            y = mix_at_snr(y, _babble_for(i, speech, by_speaker, rng), snr_db=row.snr_db, random_state=rng)
        if row.channel == "telephone":
            y = telephone_channel(y, sr=DEMO_SAMPLE_RATE)
        y = peak_normalize(y, peak_dbfs=row.peak_dbfs)
        _write_wav(out_dir / row.file_name, y)

    # Each clip has its own generator, so two threads record the same files as one; the filters
    # and FFTs release the GIL, so the second core does real work.
    with ThreadPoolExecutor(max_workers=RECORDING_THREADS) as pool:
        for _ in pool.map(record, range(len(rows))):
            done += 1
            if progress is not None:
                progress(done, total)
    return plan.loc[:, list(DEMO_COLUMNS)]


def _babble_for(
    i: int, speech: Sequence[np.ndarray], speakers: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Babble for clip ``i`` from clips of other speakers in the same batch (its own voice if alone)."""
    others = np.flatnonzero(speakers != speakers[i])
    pool = others if len(others) else np.arange(len(speech))
    picks = rng.choice(pool, size=min(_BABBLE_SOURCES, len(pool)), replace=False)
    return babble_noise(
        [speech[j] for j in picks],
        n_samples=len(speech[i]),
        n_talkers=int(rng.integers(3, 7)),
        random_state=rng,
    )
