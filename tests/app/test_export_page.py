import hashlib
import zipfile
from pathlib import Path

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.models import Clip
from labeling.data.augment import DerivedAudio, store_derived_clips
from labeling.platform.jobs import latest_job, run_next_job
from tests.app.conftest import ROOT, new_app, sign_in
from tests.audio import speechlike


def export_page() -> AppTest:
    """The page on its own, signed in, with the project the sidebar would have selected."""
    at = AppTest.from_file(str(ROOT / "pages/data/export.py"), default_timeout=60)
    sign_in(at, "admin")
    at.session_state["app.project"] = "demo"
    return at.run()


def stored_shas(ws) -> set[str]:
    with ws.db.read() as s:
        return set(s.scalars(select(Clip.sha256)))


def test_export_page_renders(app_env):
    at = new_app().run()
    at.switch_page("pages/data/export.py").run()

    assert not at.exception, at.exception
    assert at.title[0].value == "Export"
    assert at.selectbox(key="export.format").options[:2] == [
        "CSV for spreadsheets: metadata.csv and the audio",
        "JSON Lines: metadata.jsonl and the audio",
    ]


def test_export_page_produces_a_zip_of_the_project_to_download(app_env):
    at = export_page()
    at.selectbox(key="export.format").set_value("nemo")
    at.multiselect(key="export.splits").set_value(["train", "dev", "test"])
    at.button(key="export.submit").click().run()
    assert not at.exception, at.exception
    assert run_next_job(app_env, kinds=["export"]).status == "succeeded"
    at.run()

    assert not at.exception, at.exception
    assert any("12 clips exported as nemo" in s.value for s in at.success)
    assert at.get("download_button")
    with app_env.db.read() as s:
        path = Path(latest_job(s, "export").result["zip"])
    # The finished job names the zip to download, not the folder the server keeps it in.
    done = next(s.value for s in at.success if "(Job " in s.value)
    assert path.name in done
    assert str(path.parent) not in done
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        audio = {hashlib.sha256(zf.read(n)).hexdigest() for n in names if n.endswith(".wav")}
    assert any(n.endswith("/MANIFEST.json") for n in names)
    assert any(n.endswith("_manifest.json") for n in names)
    assert audio == stored_shas(app_env)


def test_a_filter_leaving_nothing_says_so(app_env):
    at = export_page()
    at.slider(key="export.min_agreement").set_value(0.5)
    at.button(key="export.submit").click().run()
    assert run_next_job(app_env, kinds=["export"]).status == "failed"
    at.run()

    assert not at.exception, at.exception
    assert "no clip of 'demo' passes the filters" in at.error[0].value
    assert not at.get("download_button")


def test_originals_replaced_by_a_fixed_copy_are_called_retired_not_deleted(app_env):
    with app_env.db.read() as s:
        originals = s.execute(select(Clip.id, Clip.project_id).order_by(Clip.id).limit(2)).all()
    fixed = [
        DerivedAudio(
            parent_id=cid,
            samples=speechlike(500 + cid),
            sample_rate=16000,
            derivation={"kind": "fix", "steps": [{"step": "test"}]},
            name_suffix="fixed",
        )
        for cid, _ in originals
    ]
    store_derived_clips(app_env, originals[0].project_id, fixed, tag_source="fix", supersede=True)
    at = export_page()
    at.button(key="export.submit").click().run()
    assert run_next_job(app_env, kinds=["export"]).status == "succeeded"
    at.run()

    assert not at.exception, at.exception
    assert any("12 clips exported" in s.value for s in at.success)
    left_out = at.dataframe[0].value
    assert left_out.to_dict("records") == [{"reason": "retired (replaced by a fixed copy)", "clips": 2}]
    shown = " ".join(e.value for kind in ("success", "info", "caption") for e in at.get(kind))
    assert "deleted" not in shown
    assert "2 retired (replaced by a fixed copy)" in shown
