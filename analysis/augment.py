"""Signal transforms for making speech harder: noise at a chosen SNR, channels, pitch and speed.

Every function takes a mono 1-D array and returns a new float64 array; nothing is read from or written
to disk, inputs are never modified, and every function that draws random numbers takes
``random_state`` (an int, a :class:`numpy.random.Generator` or ``None``), so the same seed gives the
same samples.

Which function to call:

- :func:`mix_at_snr` -- add a noise recording to speech so that the result has a requested SNR.
- :func:`car_noise` -- in-car noise (road rumble plus engine harmonics) to pass to :func:`mix_at_snr`.
- :func:`babble_noise` -- several overlapping talkers built from other speech clips.
- :func:`telephone_channel` -- a narrowband telephone line (300-3400 Hz, 8 kHz, G.711 mu-law).
- :func:`room_reverb` -- a far-field microphone in a reverberant room.
- :func:`pitch_shift` -- move the pitch by semitones, keeping the duration.
- :func:`speed_change` -- play faster or slower; duration and pitch both change, as in Kaldi's speed
  perturbation.
- :func:`peak_normalize` -- set the level by the peak sample.

A typical noisy-telephone version of a clip ``y`` sampled at ``sr``::

    noise = car_noise(len(y), sr=sr, random_state=0)
    noisy = mix_at_snr(y, noise, snr_db=10.0, random_state=0)
    phone = telephone_channel(noisy, sr=sr)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from fractions import Fraction

import librosa
import numpy as np
from scipy import signal

RandomState = int | np.random.Generator | None

__all__ = [
    "RandomState",
    "babble_noise",
    "car_noise",
    "mix_at_snr",
    "peak_normalize",
    "pitch_shift",
    "room_reverb",
    "speed_change",
    "telephone_channel",
]


def _rng(random_state: RandomState) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def _mono(y: np.ndarray, name: str = "y") -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a mono 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return arr


def _power(y: np.ndarray) -> float:
    return float(np.mean(np.square(y)))


def _unit_rms(y: np.ndarray) -> np.ndarray:
    rms = np.sqrt(_power(y))
    return y / rms if rms > 0 else y


def _fit_length(noise: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Crop a random stretch of ``noise``, or loop it from a random start when it is too short."""
    start = int(rng.integers(0, len(noise)))
    return np.take(noise, np.arange(start, start + n_samples), mode="wrap")


@functools.lru_cache(maxsize=64)
def _lowpass(up: int, down: int) -> np.ndarray:
    """The anti-aliasing filter ``scipy.signal.resample_poly(x, up, down)`` designs on every call.

    Designed once per ratio: its Kaiser window has ``20 * max(up, down) + 1`` taps, and designing it
    cost more than filtering a one-second clip (the demo corpus resamples each of its clips twice).
    """
    rate = max(up, down)
    taps = signal.firwin(20 * rate + 1, 1.0 / rate, window=("kaiser", 5.0))
    taps.setflags(write=False)
    return taps


def _resample_poly(y: np.ndarray, up: int, down: int) -> np.ndarray:
    """``scipy.signal.resample_poly(y, up, down)`` for a reduced ratio, with the filter designed once."""
    return signal.resample_poly(y, up, down, window=_lowpass(up, down).astype(y.dtype, copy=False))


def _resample(y: np.ndarray, *, orig_sr: float, target_sr: float) -> np.ndarray:
    """Polyphase resampling by the rational ratio closest to ``target_sr / orig_sr``."""
    ratio = Fraction(target_sr / orig_sr).limit_denominator(1000)
    if ratio == 1:
        return y.copy()
    return _resample_poly(y, ratio.numerator, ratio.denominator)


def mix_at_snr(
    speech: np.ndarray,
    noise: np.ndarray,
    *,
    snr_db: float,
    random_state: RandomState = None,
) -> np.ndarray:
    """Add ``noise`` to ``speech`` scaled so that the mixture has the requested SNR.

    The SNR is the ratio of mean powers over the whole clip, ``10 log10(P_speech / P_added_noise)``,
    pauses included, which is how most augmentation recipes (and the SNR recorded in a corpus's
    metadata) define it.

    Parameters
    ----------
    speech : ndarray, shape (n,)
        The clean signal.
    noise : ndarray, shape (m,)
        Any noise; only its shape over time matters, its level is set here. When ``m > n`` a random
        stretch of length ``n`` is used; when ``m < n`` it is looped from a random start.
    snr_db : float
        Requested signal-to-noise ratio in dB.
    random_state : int, Generator or None
        Chooses where in ``noise`` to start.

    Returns
    -------
    ndarray, shape (n,)
        ``speech + g * noise_stretch``; ``mixture - speech`` is the added noise.
    """
    speech = _mono(speech, "speech")
    noise = _mono(noise, "noise")
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    p_speech = _power(speech)
    if p_speech == 0:
        raise ValueError("speech is silent: an SNR is undefined")
    stretch = _fit_length(noise, len(speech), _rng(random_state))
    p_noise = _power(stretch)
    if p_noise == 0:
        raise ValueError("noise is silent over the stretch used: it cannot be scaled to an SNR")
    gain = np.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))
    return speech + gain * stretch


def car_noise(
    n_samples: int,
    *,
    sr: int,
    engine_hz: float | None = None,
    random_state: RandomState = None,
) -> np.ndarray:
    """Noise heard inside a moving car: low road rumble, engine harmonics and a little wind hiss.

    The rumble is brown (integrated white) noise low-passed at 150-300 Hz; the engine is a firing
    frequency of ``engine_hz`` with six decaying harmonics whose frequency wanders slowly, as
    the revs do; the hiss is low-passed white noise 20 dB down. Most of the energy is below 500 Hz,
    where it masks vowels' first formant and voicing rather than consonants.

    Parameters
    ----------
    n_samples : int
        Length of the result.
    sr : int
        Sample rate in Hz.
    engine_hz : float, optional
        Engine firing frequency; drawn from 25-45 Hz (a four-cylinder engine at 750-1350 rpm, ~idle to
        cruising in a high gear) when not given.
    random_state : int, Generator or None
        Seeds the noise, filter corners and harmonic phases.

    Returns
    -------
    ndarray, shape (n_samples,)
        Unit-RMS noise, ready for :func:`mix_at_snr`.
    """
    if n_samples <= 0:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    rng = _rng(random_state)
    # The integrator and filters start from rest; throw away their first half second of settling.
    warmup = sr // 2
    n = n_samples + warmup
    t = np.arange(n) / sr

    # A leaky integrator rather than a plain cumsum keeps brown noise from drifting off as a DC ramp.
    rumble = signal.lfilter([1.0], [1.0, -0.995], rng.standard_normal(n))
    corner = rng.uniform(150.0, 300.0)
    rumble = signal.sosfilt(signal.butter(4, corner, btype="lowpass", fs=sr, output="sos"), rumble)

    f0 = rng.uniform(25.0, 45.0) if engine_hz is None else float(engine_hz)
    if not 0 < f0 * 6 < sr / 2:
        raise ValueError(f"engine_hz={f0} puts its harmonics above the Nyquist frequency of sr={sr}")
    wobble = 1.0 + 0.03 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0 * wobble) / sr
    engine = np.zeros(n)
    for harmonic in range(1, 7):
        amplitude = rng.uniform(0.6, 1.0) / harmonic
        engine += amplitude * np.sin(harmonic * phase + rng.uniform(0, 2 * np.pi))

    hiss = signal.sosfilt(
        signal.butter(2, min(2000.0, 0.45 * sr), btype="lowpass", fs=sr, output="sos"),
        rng.standard_normal(n),
    )
    noise = _unit_rms(rumble) + 0.5 * _unit_rms(engine) + 0.1 * _unit_rms(hiss)
    return _unit_rms(noise[warmup:])


def babble_noise(
    sources: Sequence[np.ndarray],
    *,
    n_samples: int,
    n_talkers: int = 5,
    random_state: RandomState = None,
) -> np.ndarray:
    """Several people talking at once, built by overlapping speech clips.

    Each talker is a stream of randomly chosen ``sources`` laid end to end with short gaps and started
    at a random offset; the streams are summed with talker levels within +-3 dB of each other. Pass
    clips of speakers other than the one the babble will be mixed with: a copy of the target voice in
    the background is a different, easier, condition.

    Parameters
    ----------
    sources : sequence of ndarray
        Mono speech clips, all at the sample rate of the speech the babble will be mixed with.
    n_samples : int
        Length of the result.
    n_talkers : int
        Number of overlapping streams; 3-8 sounds like a busy room rather than one interfering talker.
    random_state : int, Generator or None
        Chooses clips, gaps, offsets and talker levels.

    Returns
    -------
    ndarray, shape (n_samples,)
        Unit-RMS babble, ready for :func:`mix_at_snr`.
    """
    if n_samples <= 0:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    if n_talkers < 1:
        raise ValueError(f"n_talkers must be at least 1, got {n_talkers}")
    clips = [_unit_rms(_mono(s, "source")) for s in sources]
    clips = [c for c in clips if np.any(c)]
    if not clips:
        raise ValueError("babble needs at least one non-silent source clip")
    rng = _rng(random_state)
    mix = np.zeros(n_samples)
    for _ in range(n_talkers):
        stream = np.zeros(n_samples)
        # Start before the clip so the first word is already under way at sample 0.
        pos = -int(rng.integers(0, max(len(c) for c in clips)))
        while pos < n_samples:
            clip = clips[int(rng.integers(len(clips)))]
            lo, hi = max(pos, 0), min(pos + len(clip), n_samples)
            if hi > lo:
                stream[lo:hi] += clip[lo - pos : hi - pos]
            pos += len(clip) + int(rng.integers(0, n_samples // 8 + 1))
        mix += 10.0 ** (rng.uniform(-3.0, 3.0) / 20.0) * stream
    if not np.any(mix):
        raise ValueError("babble came out silent: the source clips contain no signal")
    return _unit_rms(mix)


def telephone_channel(
    y: np.ndarray,
    *,
    sr: int,
    low_hz: float = 300.0,
    high_hz: float = 3400.0,
    channel_sr: int = 8000,
    mu_law: bool = True,
) -> np.ndarray:
    """Pass a signal through a narrowband telephone line and back to its own sample rate.

    The signal is resampled to ``channel_sr``, band-limited to ``low_hz``-``high_hz`` (the ITU-T
    voice band), optionally coded with 8-bit G.711 mu-law, and resampled back to ``sr``. Models trained
    on wideband audio lose the fricatives' energy above 3.4 kHz and the voicing below 300 Hz.

    Parameters
    ----------
    y : ndarray, shape (n,)
        Signal in [-1, 1] (full scale is the codec's full scale).
    sr : int
        Sample rate of ``y`` and of the result.
    low_hz, high_hz : float
        Pass band edges.
    channel_sr : int
        Sample rate of the line; ``high_hz`` must be below half of it.
    mu_law : bool
        Apply 8-bit mu-law (mu = 255) quantisation on the line.

    Returns
    -------
    ndarray, shape (n,)
    """
    y = _mono(y)
    if not 0 < low_hz < high_hz < channel_sr / 2:
        raise ValueError(
            f"need 0 < low_hz < high_hz < channel_sr / 2, got {low_hz}, {high_hz}, {channel_sr / 2}"
        )
    line = _resample(y, orig_sr=sr, target_sr=channel_sr)
    sos = signal.butter(4, [low_hz, high_hz], btype="bandpass", fs=channel_sr, output="sos")
    # Zero-phase filtering keeps words where they were, so time stamps stay valid after the channel.
    line = signal.sosfiltfilt(sos, line, padlen=min(3 * (2 * len(sos) + 1), len(line) - 1))
    if mu_law:
        mu = 255.0
        compressed = np.sign(line) * np.log1p(mu * np.minimum(np.abs(line), 1.0)) / np.log1p(mu)
        quantised = np.round(compressed * 127.0) / 127.0
        line = np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(mu)) / mu
    out = _resample(line, orig_sr=channel_sr, target_sr=sr)
    return np.pad(out, (0, max(0, len(y) - len(out))))[: len(y)]


def room_reverb(
    y: np.ndarray,
    *,
    sr: int,
    rt60: float = 0.5,
    direct_to_reverberant_db: float = 3.0,
    random_state: RandomState = None,
) -> np.ndarray:
    """Simulate a microphone a few metres away in a reverberant room.

    The impulse response is a direct path followed, after 5 ms, by exponentially decaying Gaussian
    noise reaching -60 dB at ``rt60`` seconds -- the standard statistical model of late
    reverberation. The result keeps the length of ``y``: the tail past the end is cut, as a recording
    that stops would cut it.

    Parameters
    ----------
    y : ndarray, shape (n,)
    sr : int
        Sample rate in Hz.
    rt60 : float
        Reverberation time in seconds (0.3 for a furnished living room, 1+ for a hall).
    direct_to_reverberant_db : float
        Energy of the direct path over the energy of the reverberant tail; lower is farther away.
    random_state : int, Generator or None
        Seeds the reverberant tail.

    Returns
    -------
    ndarray, shape (n,)
    """
    y = _mono(y)
    if rt60 <= 0:
        raise ValueError(f"rt60 must be positive, got {rt60}")
    rng = _rng(random_state)
    n_ir = max(2, int(rt60 * sr))
    t = np.arange(n_ir) / sr
    tail = rng.standard_normal(n_ir) * np.exp(-np.log(1000.0) * t / rt60)
    tail[: int(0.005 * sr) + 1] = 0.0
    tail *= np.sqrt(10.0 ** (-direct_to_reverberant_db / 10.0) / np.sum(np.square(tail)))
    ir = tail
    ir[0] = 1.0
    return signal.fftconvolve(y, ir, mode="full")[: len(y)]


def pitch_shift(y: np.ndarray, *, sr: int, n_steps: float) -> np.ndarray:
    """Shift the pitch by ``n_steps`` semitones without changing the duration.

    A phase vocoder stretch followed by resampling (:func:`librosa.effects.pitch_shift`); the
    spectral envelope moves with the pitch, so a large upward shift also sounds like a smaller
    speaker. Keep ``|n_steps|`` within a few semitones for natural-sounding speech.

    Parameters
    ----------
    y : ndarray, shape (n,)
    sr : int
        Sample rate in Hz.
    n_steps : float
        Semitones; f0 is multiplied by ``2 ** (n_steps / 12)``.

    Returns
    -------
    ndarray, shape (n,)
    """
    y = _mono(y)
    if not np.isfinite(n_steps):
        raise ValueError(f"n_steps must be finite, got {n_steps}")
    return np.asarray(librosa.effects.pitch_shift(y, sr=sr, n_steps=float(n_steps)), dtype=np.float64)


def speed_change(y: np.ndarray, *, factor: float) -> np.ndarray:
    """Play ``y`` ``factor`` times as fast: the duration divides and every frequency multiplies by it.

    This is speed perturbation as used in ASR training recipes (factors 0.9, 1.0, 1.1): done by
    resampling, with the ratio rounded to the nearest fraction with a denominator up to 1000.

    Parameters
    ----------
    y : ndarray, shape (n,)
    factor : float
        In [0.25, 4]; above 1 is faster and higher.

    Returns
    -------
    ndarray, shape (about n / factor,)
    """
    y = _mono(y)
    if not 0.25 <= factor <= 4.0:
        raise ValueError(f"factor must be in [0.25, 4], got {factor}")
    ratio = Fraction(factor).limit_denominator(1000)
    if ratio == 1:
        return y.copy()
    return _resample_poly(y, ratio.denominator, ratio.numerator)


def peak_normalize(y: np.ndarray, *, peak_dbfs: float = -1.0) -> np.ndarray:
    """Scale ``y`` so its largest absolute sample is ``peak_dbfs`` dB relative to full scale (1.0).

    A silent input is returned unchanged. A positive ``peak_dbfs`` is allowed: values beyond full
    scale clip when the result is written as integer PCM, which is how an over-driven recording sounds.
    """
    y = _mono(y)
    peak = float(np.max(np.abs(y)))
    if peak == 0:
        return y.copy()
    return y * (10.0 ** (peak_dbfs / 20.0) / peak)
