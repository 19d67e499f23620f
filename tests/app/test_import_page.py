"""The Import page: uploads land with every file that was left out named and explained in the words
of the page (not the command line's flags)."""

from __future__ import annotations

import io

import soundfile as sf
from streamlit.testing.v1 import AppTest

from tests.app.conftest import new_app
from tests.audio import speechlike

PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"


def wav_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, speechlike(seed), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def import_page() -> AppTest:
    """The whole app on its Import page (the page links to others, which only the app knows)."""
    at = new_app()
    at.default_timeout = 120
    at.run()
    return at.switch_page("pages/data/import_audio.py").run()


def page_text(at: AppTest) -> str:
    """Every message, caption, link and table cell the page shows."""
    parts = [e.value for kind in ("success", "warning", "error", "info", "caption") for e in at.get(kind)]
    parts += [str(e.proto.label) for e in at.get("page_link")]
    parts += [frame.value.to_csv() for frame in at.dataframe]
    return "\n".join(str(p) for p in parts)


def test_an_upload_names_every_file_left_out_and_why(app_env) -> None:
    at = import_page()
    at.text_input(key="import.project").set_value("fsdd-walk")
    at.text_input(key="import.pattern").set_value(PATTERN)
    at.file_uploader(key="import.files").set_value(
        [
            ("7_ana_1.wav", wav_bytes(1), "audio/wav"),
            ("3_ben_2.wav", wav_bytes(2), "audio/wav"),
            ("broken.wav", b"RIFF\x00\x00 this is not a wave file", "audio/wav"),
            ("empty.wav", b"", "audio/wav"),
            ("README.md", b"# Recordings of the walk\n", "text/markdown"),
        ]
    )
    at.button(key="import.upload").click().run()
    assert not at.exception, at.exception
    assert any("2 clips imported into 'fsdd-walk'" in w.value for w in at.warning)
    (table,) = [d.value for d in at.dataframe if "what" in d.value.columns]
    left_out = table.set_index("what")["reason"].to_dict()
    assert set(left_out) == {"broken.wav", "empty.wav", "README.md"}
    assert left_out["broken.wav"].startswith("not readable audio")
    assert left_out["empty.wav"].startswith("empty file")
    assert left_out["README.md"].startswith("not an audio file")
    shown = page_text(at)
    assert "--pattern" not in shown
    assert "'fsdd-walk''" not in shown  # a quoted name followed by 's
    assert "'fsdd-walk'" in " ".join(str(e.proto.label) for e in at.get("page_link"))


def test_an_upload_with_no_audio_says_which_files_were_not_audio(app_env) -> None:
    at = import_page()
    at.file_uploader(key="import.files").set_value([("README.md", b"# notes\n", "text/markdown")])
    at.button(key="import.upload").click().run()
    assert not at.exception, at.exception
    assert "README.md" in at.error[0].value
    assert "in files" not in at.error[0].value
