"""The demo corpus: real espeak-ng speech, deterministic files, metadata that matches the audio.

Pitch is measured with YIN (analysis.features.yin, checked against librosa.yin), spectra with
scipy.signal.welch, file contents with hashlib.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
import threading
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy import signal

from analysis.features import yin
from labeling.demo.synth import (
    DEMO_CLASSES,
    DEMO_COLUMNS,
    DEMO_SAMPLE_RATE,
    EspeakSynthesizer,
    EspeakUnavailableError,
    demo_corpus_plan,
    demo_speakers,
    demo_tag_groups,
    speak_as,
    synthesize_demo_corpus,
)

SR = DEMO_SAMPLE_RATE


def median_f0(y: np.ndarray, *, sr: int = SR) -> float:
    f0 = yin(y, fmin=60.0, fmax=500.0, sr=sr, frame_length=1024, hop_length=1024 // 4)
    rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=256)[0][: len(f0)]
    return float(np.median(f0[rms > 0.3 * rms.max()]))


def mean_mfcc(y: np.ndarray) -> np.ndarray:
    return librosa.feature.mfcc(y=y.astype(np.float32), sr=SR, n_mfcc=13)[1:].mean(axis=1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def band_fraction(y: np.ndarray, lo: float, hi: float) -> float:
    freqs, psd = signal.welch(y, fs=SR, nperseg=512)
    return float(psd[(freqs >= lo) & (freqs < hi)].sum() / psd.sum())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("demo")
    return out, synthesize_demo_corpus(out, size=120, random_state=1)


def test_espeak_speaks_every_word_as_audible_speech_of_plausible_length() -> None:
    speakers = demo_speakers("initial")
    with EspeakSynthesizer() as tts:
        assert tts.sample_rate > 8000
        for speaker in (speakers[0], speakers[-1]):
            for word in DEMO_CLASSES:
                y = speak_as(tts, speaker, word)
                assert 0.2 <= len(y) / SR <= 1.0, (speaker.speaker_id, word, len(y) / SR)
                assert np.max(np.abs(y)) > 0.1
                frames = librosa.feature.rms(y=y, frame_length=400, hop_length=160)[0]
                assert np.mean(frames > 0.05 * frames.max()) > 0.5, "mostly sound, not silence"
                # Voiced speech: a steady pitch in the range of human voices somewhere in the word.
                assert 70 < median_f0(y) < 400


def test_different_accents_sound_different() -> None:
    with EspeakSynthesizer() as tts:
        takes = {voice: [tts.speak("left", voice=voice) for _ in range(2)] for voice in ("en-us", "en-029")}
        scottish = tts.speak("left", voice="en-gb-scotland")
    same = np.linalg.norm(mean_mfcc(takes["en-us"][0]) - mean_mfcc(takes["en-us"][1]))
    for other in (takes["en-029"][0], scottish):
        assert not np.array_equal(takes["en-us"][0][: len(other)], other[: len(takes["en-us"][0])])
        assert np.linalg.norm(mean_mfcc(takes["en-us"][0]) - mean_mfcc(other)) > 5 * same + 1.0


def test_teens_speak_higher_than_adults_of_the_same_accent() -> None:
    speakers = demo_speakers("initial")
    with EspeakSynthesizer() as tts:
        f0 = {
            s.speaker_id: np.median([median_f0(speak_as(tts, s, w)) for w in ("no", "go")]) for s in speakers
        }
    compared = 0
    for accent in {s.accent for s in speakers}:
        for sex in "mf":  # espeak variants m1..m8 are male voices, f1..f5 female
            group = [s for s in speakers if s.accent == accent and s.variant.startswith(sex)]
            adults = [f0[s.speaker_id] for s in group if s.age_group == "adult"]
            teens = [f0[s.speaker_id] for s in group if s.age_group == "teen"]
            if adults and teens:
                assert min(teens) > 1.2 * max(adults), (accent, sex, adults, teens)
                compared += 1
    assert compared >= 4


def test_same_requests_give_identical_samples_even_from_two_threads() -> None:
    requests = [("stop", "en-us"), ("go", "en-gb-scotland+f2"), ("stop", "en-us")]
    results: dict[int, list[np.ndarray]] = {}

    def speak_all(key: int) -> None:
        with EspeakSynthesizer() as tts:
            results[key] = [tts.speak(text, voice=voice) for text, voice in requests]

    threads = [threading.Thread(target=speak_all, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for first, second in zip(results[0], results[1], strict=True):
        np.testing.assert_array_equal(first, second)


def test_unknown_voice_is_refused() -> None:
    with EspeakSynthesizer() as tts, pytest.raises(ValueError, match="no voice"):
        tts.speak("stop", voice="xx-nowhere")


def test_missing_espeak_gives_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # what an absent package looks like
    with pytest.raises(EspeakUnavailableError, match=re.escape("pip install 'earmark[demo]'")):
        synthesize_demo_corpus(tmp_path, size="tiny")
    assert not any(tmp_path.iterdir()), "nothing is written when espeak-ng is missing"


def test_broken_espeak_data_is_reported_and_releases_the_synthesizer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import espeakng_loader

    monkeypatch.setattr(espeakng_loader, "get_data_path", lambda: str(tmp_path / "espeak-ng-data"))
    with pytest.raises(EspeakUnavailableError, match="could not read its data"):
        EspeakSynthesizer()
    monkeypatch.undo()
    spoken: list[np.ndarray] = []

    def speak() -> None:
        with EspeakSynthesizer() as tts:
            spoken.append(tts.speak("go"))

    # Another thread would wait forever if the failed synthesizer had kept espeak-ng's lock.
    other = threading.Thread(target=speak, daemon=True)
    other.start()
    other.join(timeout=30)
    assert len(spoken) == 1


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        frame = synthesize_demo_corpus(tmp_path / name, size="tiny", random_state=seed)
        runs[name] = {f: sha256(tmp_path / name / f) for f in frame["file_name"]}
    assert len(runs["a"]) == 24
    assert runs["a"] == runs["b"]
    assert set(runs["a"].values()).isdisjoint(runs["c"].values())


def test_files_are_safely_named_16khz_mono_16bit(corpus: tuple[Path, pd.DataFrame]) -> None:
    out, frame = corpus
    assert len(frame) == 120
    assert frame["file_name"].is_unique
    assert sorted(p.name for p in out.iterdir()) == sorted(frame["file_name"])
    for name in frame["file_name"]:
        assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*\.wav", name), name
        info = sf.info(out / name)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (SR, 1, "PCM_16", "WAV")
        assert 0.3 <= info.duration <= 1.5


def test_metadata_and_tags_describe_each_clip(corpus: tuple[Path, pd.DataFrame]) -> None:
    _, frame = corpus
    assert tuple(frame.columns) == DEMO_COLUMNS
    vocabulary = {tag for tags in demo_tag_groups().values() for tag in tags}
    for row in frame.itertuples(index=False):
        assert row.label in DEMO_CLASSES
        assert row.label in row.transcript.split()
        assert row.file_name.startswith(f"{row.label}_{row.speaker}_")
        assert f"_{row.noise}" in row.file_name
        assert sorted(row.tags) == sorted(
            [f"noise:{row.noise}", f"channel:{row.channel}", f"accent:{row.accent}", f"age:{row.age_group}"]
        )
        assert set(row.tags) <= vocabulary
        assert math.isnan(row.snr_db) == (row.noise == "clean")
        assert row.noise == "clean" or row.snr_db in {5.0, 10.0, 20.0}
        assert (row.device == "phone") == (row.channel == "telephone")
        assert row.batch == "initial"
    # A speaker is one person: one accent, one voice, one age group.
    per_speaker = frame.drop_duplicates(["speaker", "accent", "voice", "age_group"])
    assert per_speaker["speaker"].is_unique


def test_audio_matches_the_recorded_conditions(corpus: tuple[Path, pd.DataFrame]) -> None:
    out, frame = corpus
    audio = {name: sf.read(out / name)[0] for name in frame["file_name"]}
    by = frame.set_index("file_name")
    wideband_clean = by.index[(by["noise"] == "clean") & (by["channel"] == "wideband")]
    telephone = by.index[by["channel"] == "telephone"]
    car = by.index[(by["noise"] == "car") & (by["channel"] == "wideband")]
    assert len(wideband_clean) > 0
    assert len(telephone) > 0
    assert len(car) > 0

    # Telephone clips have nothing above the 3.4 kHz voice band; wideband speech does.
    assert max(band_fraction(audio[n], 3600, SR / 2) for n in telephone) < 0.002
    assert np.median([band_fraction(audio[n], 3600, SR / 2) for n in wideband_clean]) > 0.01
    # Clean clips start in silence; in a car the engine is running before anyone speaks.
    quiet = [np.sqrt(np.mean(audio[n][:400] ** 2)) / np.sqrt(np.mean(audio[n] ** 2)) for n in wideband_clean]
    noisy = [np.sqrt(np.mean(audio[n][:400] ** 2)) / np.sqrt(np.mean(audio[n] ** 2)) for n in car]
    assert max(quiet) < 1e-3 < min(noisy)
    # ... and the lower the SNR, the more of the clip is the engine's low rumble.
    low = by.loc[car, "snr_db"]
    assert np.median([band_fraction(audio[n], 0, 200) for n in low.index[low == 5.0]]) > np.median(
        [band_fraction(audio[n], 0, 200) for n in low.index[low == 20.0]]
    )


def test_progress_counts_up_to_its_total(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    frame = synthesize_demo_corpus(tmp_path, size=6, progress=lambda done, total: calls.append((done, total)))
    assert [done for done, _ in calls] == list(range(1, len(calls) + 1))
    assert {total for _, total in calls} == {len(calls)}
    assert len(calls) >= len(frame)


def test_standard_corpus_is_small_real_and_imbalanced() -> None:
    plan = demo_corpus_plan(size="standard", random_state=0)
    assert 600 <= len(plan) <= 1200
    noise = plan["noise"].value_counts(normalize=True)
    assert noise["clean"] > 0.5
    assert noise["clean"] > noise["car"] > noise["babble"] > 0.05
    channel = plan["channel"].value_counts(normalize=True)
    assert 0.05 < channel["telephone"] < noise["car"]
    accents = plan["accent"].value_counts()
    assert accents.idxmin() == "caribbean"
    assert accents.min() < 0.6 * accents.median()
    assert set(plan["age_group"]) == {"adult", "teen"}
    assert set(plan["label"]) == set(DEMO_CLASSES)
    assert (plan["transcript"] != plan["label"]).sum() > 0, "a few takes are short phrases"
    assert plan.groupby(["speaker", "label"]).size().min() >= 3, "several takes per word and speaker"


def test_production_batch_drifts_from_the_initial_one() -> None:
    initial = demo_corpus_plan(size="standard", random_state=0)
    production = demo_corpus_plan(size="standard", random_state=0, batch="production")
    assert 100 <= len(production) <= 200
    assert (production["batch"] == "production").all()
    assert (production["noise"] == "car").mean() > (initial["noise"] == "car").mean() + 0.1
    new_devices = set(production["device"]) - set(initial["device"])
    assert new_devices == {"smart_speaker"}
    assert set(production.loc[production["device"] == "smart_speaker", "channel"]) == {"far_field"}
    assert set(production["speaker"]).isdisjoint(initial["speaker"]), "new people, so splits stay clean"


def test_plan_is_reproducible_and_seeded() -> None:
    a = demo_corpus_plan(size="small", random_state=3)
    pd.testing.assert_frame_equal(a, demo_corpus_plan(size="small", random_state=3))
    assert not a["file_name"].equals(demo_corpus_plan(size="small", random_state=4)["file_name"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": "huge"}, "size"),
        ({"size": 0}, "size"),
        ({"batch": "later"}, "batch"),
        ({"random_state": -1}, "random_state"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        demo_corpus_plan(**kwargs)


def test_tag_groups_cover_every_condition() -> None:
    groups = demo_tag_groups()
    assert list(groups) == ["noise", "channel", "accent", "age"]
    assert {"noise:clean", "noise:car", "noise:babble"} == set(groups["noise"])
    assert {"channel:wideband", "channel:telephone"} <= set(groups["channel"])
    assert {"age:adult", "age:teen"} == set(groups["age"])
    assert {"accent:us", "accent:scottish", "accent:caribbean"} <= set(groups["accent"])


def test_breathy_voices_sound_the_same_in_every_process() -> None:
    # Female variants add breath noise from espeak-ng's generator, which it seeds from the clock.
    import subprocess
    import sys

    code = (
        "import hashlib; from labeling.demo.synth import EspeakSynthesizer\n"
        "with EspeakSynthesizer() as tts:\n"
        "    print(hashlib.sha256(tts.speak('stop', voice='en-us+f2').tobytes()).hexdigest())\n"
    )
    root = Path(__file__).resolve().parents[2]
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
        ).stdout
        for _ in range(2)
    }
    assert len(runs) == 1
