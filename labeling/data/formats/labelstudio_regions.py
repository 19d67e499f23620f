"""Regions as a Label Studio JSON import: :func:`labelstudio_region_tasks` and
:func:`region_label_config` (what :func:`labeling.data.formats.labelstudio.read_labelstudio_regions`
reads back).

Label Studio's "ASR using segments", "Speaker diarization" and "Sound event detection" templates draw
regions on an ``Audio`` tag with a ``Labels`` control; the first adds a per-region ``TextArea``. Their
results, as Label Studio exports them: per region a ``labels`` result (``value``: ``start``, ``end``
in seconds, ``channel``, ``labels``) and, for a transcript, a ``textarea`` result with the same
``id`` and span (``value.text`` a list). Earmark writes one task per recording (``data.audio`` a
``/data/local-files/?d=<file name>`` reference, so Label Studio finds the audio under the Local Files
document root; ``data.original_name`` the file name) and one annotation per set: an annotator's
(``completed_by`` as Earmark's Label Studio export names people, see
:mod:`labeling.data.formats.identities`) and the final regions (Earmark's final-label
pseudo-annotator, marked ``ground_truth``), and the people to create in Label Studio first. Tags go
in a per-region ``choices`` result named ``tags``. Sets without a person (imported, proposed) become
predictions, with ``model_version`` the set's source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import pandas as pd

from labeling.data.formats.identities import FINAL_LABEL_EMAIL, completed_by_for, username_for

LABELS = "labels"
TRANSCRIPTION = "transcription"
TAGS = "tags"
AUDIO = "audio"


def _results(regions: pd.DataFrame, prefix: str) -> list[dict[str, Any]]:
    results = []
    ordered = regions.sort_values(["start", "end", "label"], kind="stable")
    for n, r in enumerate(ordered.itertuples(index=False)):
        region_id = f"{prefix}{n}"
        span = {"start": float(r.start), "end": float(r.end), "channel": 0}

        def result(
            control: str, kind: str, value: dict[str, Any], rid: str = region_id, at: dict[str, Any] = span
        ) -> dict[str, Any]:
            return {
                "id": rid,
                "from_name": control,
                "to_name": AUDIO,
                "type": kind,
                "origin": "manual",
                "value": {**at, **value},
            }

        results.append(result(LABELS, "labels", {"labels": [r.label]}))
        if isinstance(r.text, str) and r.text:
            results.append(result(TRANSCRIPTION, "textarea", {"text": [r.text]}))
        if isinstance(r.tags, (list, tuple)) and r.tags:
            results.append(result(TAGS, "choices", {"choices": list(r.tags)}))
    return results


def labelstudio_region_tasks(regions: pd.DataFrame) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """One task per recording of ``regions`` (``recording, annotator, source, start, end, label, text,
    tags``), each set an annotation (annotators', final) or a prediction (sets without a person); and
    the people the annotations name, each the body of Label Studio's ``POST /api/users/``, to create
    before importing the tasks (its import refuses an e-mail it does not know), as the clip export's
    ``labelstudio_users.json``."""
    tasks = []
    people: dict[str, str] = {}
    for t, (name, rec) in enumerate(regions.groupby("recording", sort=True), start=1):
        task: dict[str, Any] = {
            "id": t,
            "data": {AUDIO: f"/data/local-files/?d={quote(str(name))}", "original_name": str(name)},
            "annotations": [],
            "predictions": [],
        }
        sets = rec.assign(who=rec["annotator"].fillna("")).groupby(["who", "source"], sort=True)
        for a, ((who, source), group) in enumerate(sets, start=1):
            prefix = f"t{t}a{a}r"
            if who:
                author: Any = completed_by_for(str(who))
                if isinstance(author, dict):
                    people.setdefault(author["email"], str(who))
            elif source == "final":
                author = {"email": FINAL_LABEL_EMAIL}
                people.setdefault(FINAL_LABEL_EMAIL, "Earmark final labels")
            else:
                task["predictions"].append({"model_version": str(source), "result": _results(group, prefix)})
                continue
            task["annotations"].append(
                {
                    "result": _results(group, prefix),
                    "ground_truth": source == "final",
                    "was_cancelled": False,
                    "completed_by": author,
                }
            )
        tasks.append(task)
    users = [
        {"email": e, "username": username_for(e), "first_name": name[:256], "last_name": ""}
        for e, name in people.items()
    ]
    return tasks, users


def region_label_config(classes: Sequence[str], tags: Sequence[str], *, transcribes: bool) -> str:
    """A labeling config for the tasks: the templates' ``Labels`` over ``Audio``, a per-region
    ``TextArea`` when there are transcripts and per-region ``Choices`` for tags."""
    lines = ["<View>", f'  <Labels name="{LABELS}" toName="{AUDIO}">']
    lines += [f"    <Label value={quoteattr(c)}/>" for c in classes]
    lines += ["  </Labels>", f'  <Audio name="{AUDIO}" value="${AUDIO}"/>']
    if transcribes:
        lines.append(
            f'  <TextArea name="{TRANSCRIPTION}" toName="{AUDIO}" perRegion="true" editable="true" rows="2"/>'
        )
    if tags:
        lines.append(f'  <Choices name="{TAGS}" toName="{AUDIO}" perRegion="true" choice="multiple">')
        lines += [f"    <Choice value={quoteattr(t)}/>" for t in tags]
        lines.append("  </Choices>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"
