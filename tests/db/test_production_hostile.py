"""Hostile prediction logs on both engines: whatever is wrong with one line is that line's problem and
the good lines are logged; no value or line over 1 MiB is stored; log lines end at line feeds only;
a re-imported log decodes no audio for requests already logged."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import func, select

from db.models import ProductionClip
from labeling.data.projects import create_project
from labeling.monitor.production import import_production, log_predictions

NOW = "2025-06-01T09:00:00+00:00"
NAMES = ["0_theo_0.wav", "1_theo_0.wav", "2_theo_0.wav", "3_theo_0.wav"]


@pytest.fixture
def logged(workspace, fsdd_dir, tmp_path):
    """A classification project and a folder holding four FSDD recordings, where a log will go."""
    with workspace.db.write() as s:
        create_project(s, name="digits", classes=[str(d) for d in range(10)])
    folder = tmp_path / "log"
    folder.mkdir()
    for name in NAMES:
        shutil.copy(fsdd_dir / "recordings" / name, folder / name)
    return workspace, folder


def _record(name: str, request: str, **extra: object) -> dict:
    return {
        "audio": name,
        "timestamp": NOW,
        "model": "v3",
        "prediction": name[0],
        "confidence": 0.9,
        "request_id": request,
        **extra,
    }


def _nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def _stored(ws) -> list[tuple[str, dict]]:  # type: ignore[no-untyped-def]
    with ws.db.read() as s:
        rows = s.execute(
            select(ProductionClip.request_id, ProductionClip.meta).order_by(ProductionClip.request_id)
        ).all()
    return [(r, m) for r, m in rows]


def test_a_line_that_breaks_the_reader_is_that_lines_problem(logged):
    ws, folder = logged
    good = [json.dumps(_record(NAMES[0], "r0")), json.dumps(_record(NAMES[1], "r1"))]
    hostile = [
        # Valid ISO 8601 with a zone, but one hour before the first instant a datetime can hold in UTC.
        json.dumps(_record(NAMES[2], "early", timestamp="0001-01-01T00:00:00+01:00")),
        # meta nested 100,000 deep: more than the JSON parser's stack allows.
        json.dumps(_record(NAMES[3], "deep"))[:-1] + ', "meta": ' + _nested(100_000) + "}",
        # Nested 200 deep: parsed by JSON, but past any metadata Earmark stores.
        json.dumps(_record(NAMES[3], "deep200"))[:-1] + ', "meta": ' + _nested(200) + "}",
    ]
    log = folder / "log.jsonl"
    log.write_text("\n".join([good[0], *hostile, good[1]]) + "\n")
    report = import_production(ws, log, "digits", batch="day1")
    reasons = {p.ref: p.reason for p in report.rejected}
    assert report.n_logged == 2
    assert set(reasons) == {"line 2", "line 3", "line 4"}
    assert "out of range" in reasons["line 2"]
    assert "nested deeper than 64 levels" in reasons["line 3"]
    assert "nested deeper than 64 levels" in reasons["line 4"]
    assert [r for r, _ in _stored(ws)] == ["r0", "r1"]

    # Records a script holds: the same, each record on its own.
    deep: dict = {}
    node = deep
    for _ in range(100_000):
        node["a"] = {}
        node = node["a"]
    records = [
        _record(NAMES[2], "api-early", timestamp="0001-01-01T00:00:00+01:00"),
        _record(NAMES[3], "api-deep", meta=deep),
        _record(NAMES[2], "api-good"),
    ]
    api = log_predictions(ws, "digits", records, batch="api", audio_root=folder)
    assert api.n_logged == 1
    assert [p.ref for p in api.rejected] == ["record 1", "record 2"]
    assert "out of range" in api.rejected[0].reason
    assert "nested deeper" in api.rejected[1].reason


def test_no_value_or_line_over_1_mib_is_stored(logged):
    ws, folder = logged
    mib = 2**20
    lines = [
        json.dumps(_record(NAMES[0], "r0", meta={"note": "fine"})),
        json.dumps(_record(NAMES[1], "big-value", meta={"blob": "x" * (mib + 1)})),
        # No value over the limit, but 3 MiB in all: more than a line may hold.
        json.dumps(_record(NAMES[2], "big-line", meta={f"k{i}": "y" * 1000 for i in range(3000)})),
        json.dumps(_record(NAMES[3], "r3", extra_key="z" * (mib + 10))),
        json.dumps(_record(NAMES[2], "r2")),
    ]
    log = folder / "log.jsonl"
    log.write_text("\n".join(lines) + "\n")
    report = import_production(ws, log, "digits", batch="day1")
    reasons = {p.ref: p.reason for p in report.rejected}
    assert set(reasons) == {"line 2", "line 3", "line 4"}
    assert all("longer than 1 MiB" in reasons[ref] for ref in reasons), reasons
    assert [r for r, _ in _stored(ws)] == ["r0", "r2"]

    records = [
        _record(NAMES[0], "api-value", meta={"blob": "é" * mib}),  # 2 MiB of UTF-8
        _record(NAMES[1], "api-total", meta={f"k{i}": "y" * 1000 for i in range(2000)}),
        _record(NAMES[3], "api-transcript", transcript="w" * (mib + 1)),
        _record(NAMES[3], "api-good", meta={"note": "fine"}),
    ]
    api = log_predictions(ws, "digits", records, batch="api", audio_root=folder)
    assert api.n_logged == 1
    reasons = {p.ref: p.reason for p in api.rejected}
    assert "longer than 1 MiB" in reasons["record 1"]
    assert "metadata takes more than 1 MiB" in reasons["record 2"]
    assert "longer than 1 MiB" in reasons["record 3"]
    with ws.db.read() as s:
        biggest = max(len(json.dumps(m)) for m in s.scalars(select(ProductionClip.meta)))
    assert biggest < 1000


def test_log_lines_end_at_line_feeds_and_a_bom_costs_nothing(logged):
    ws, folder = logged
    notes = ["line\u2028separator", "paragraph\u2029separator", "next\u0085line", "plain"]
    lines = [
        json.dumps(_record(name, f"r{i}", device=f"tab\u2028{i}", meta={"note": note}), ensure_ascii=False)
        for i, (name, note) in enumerate(zip(NAMES, notes, strict=True))
    ]
    log = folder / "log.jsonl"
    log.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8") + b"\r\n")
    report = import_production(ws, log, "digits", batch="day1")
    assert report.rejected == []
    assert report.n_logged == 4
    assert _stored(ws) == [(f"r{i}", {"note": note}) for i, note in enumerate(notes)]


def test_a_reimported_log_matches_request_ids_before_decoding_audio(logged):
    ws, folder = logged
    log = folder / "log.jsonl"
    log.write_text("".join(json.dumps(_record(n, f"r{i}")) + "\n" for i, n in enumerate(NAMES[:3])))
    first = import_production(ws, log, "digits", batch="day1")
    assert (first.n_logged, first.rejected) == (3, [])
    # The audio is no longer decodable: a re-import that decoded it again would reject every line.
    for name in NAMES[:3]:
        (folder / name).write_bytes(b"RIFF not audio at all" * 10)
    with log.open("a") as fh:
        fh.write(json.dumps(_record(NAMES[3], "r3")) + "\n")
        fh.write(json.dumps(_record(NAMES[3], "r3")) + "\n")  # the same request twice in one log
    again = import_production(ws, log, "digits", batch="day1")
    assert again.rejected == []
    assert (again.n_logged, again.n_duplicates) == (1, 4)
    with ws.db.read() as s:
        assert s.scalar(select(func.count()).select_from(ProductionClip)) == 4
