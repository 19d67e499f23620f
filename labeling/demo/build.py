"""The demo project: ``create_demo(ws)`` synthesises a small speech-commands corpus and imports it.

It is built in steps (:data:`DEMO_STEPS`), each a function ``step(ws, ctx) -> str`` that returns a
line for the report; later parts of Earmark add their own steps (annotators, a model run, a
production batch, a second project of long recordings) so the demo shows something real on every
page.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete

from db.models import Project
from labeling.data.formats.base import ImportPlan, SourceItem
from labeling.data.importer import ImportReport, import_plan
from labeling.data.projects import ProjectError, ProjectNotFound, count_projects, create_project, get_project
from labeling.demo.annotators import step_annotators
from labeling.demo.context import DemoContext
from labeling.demo.model import step_improve_weakest_slice, step_model_run
from labeling.demo.recordings import DEMO_REGIONS_PROJECT, step_regions_project
from labeling.demo.traffic import step_production_batches
from labeling.platform.workspace import Workspace

DEMO_PROJECT = "Voice commands (demo)"
DEMO_CONVENTIONS = """\
# Labeling conventions — voice commands

Each clip should contain one of ten command words: **yes, no, up, down, left, right, on, off,
stop, go**. Some clips embed the word in a short phrase ("please go now"); label the command word.

1. Choose the command word you hear. If you hear two, choose the one that is stressed.
2. Tick every tag that applies: background noise (car, babble), the channel (telephone,
   far-field), the speaker's accent and whether the voice sounds like a teenager's.
3. Mark **unsure** when you hesitate between two words; never guess silently.
4. Use **cannot label** only when no command word is intelligible, and say why.
5. Transcripts: lower case, no punctuation, no filler words ("um", "uh").
"""


def _plan_from_corpus(corpus: Any, folder: Path, *, labelled: bool) -> ImportPlan:
    items = []
    for row in corpus.to_dict("records"):
        meta = {
            k: ("" if isinstance(v, float) and math.isnan(v) else str(v))
            for k, v in row.items()
            if k not in {"file_name", "label", "transcript", "tags"}
        }
        items.append(
            SourceItem(
                path=folder / row["file_name"],
                name=row["file_name"],
                metadata={k: v for k, v in meta.items() if v != ""},
                label=row["label"] if labelled else None,
                transcript=row["transcript"] if labelled else None,
                tags=tuple(row["tags"]),
            )
        )
    return ImportPlan(items=items, source_format="demo")


def import_corpus_batch(
    ws: Workspace, ctx: DemoContext, *, batch: str, labelled: bool, size: str | int
) -> ImportReport:
    """Synthesise one batch of the demo corpus into a temporary folder and import it."""
    from labeling.demo.synth import synthesize_demo_corpus

    with tempfile.TemporaryDirectory(prefix="earmark-demo-") as tmp:
        corpus = synthesize_demo_corpus(
            Path(tmp),
            size=size,
            random_state=ctx.random_state,
            batch=batch,
            progress=ctx.report(f"Synthesising the {batch} batch's speech, clip"),
        )
        plan = _plan_from_corpus(corpus, Path(tmp), labelled=labelled)
        return import_plan(
            ws,
            ctx.project,
            plan,
            source=f"demo:{batch}",
            create=False,
            progress=ctx.report(f"Decoding, checking and storing the {batch} batch, clip"),
            batch_name=f"demo {batch} batch",
        )


def step_project(ws: Workspace, ctx: DemoContext) -> str:
    """Demo step: create the project with its classes, tag groups and k."""
    from labeling.demo.synth import DEMO_CLASSES, demo_tag_groups

    groups = {g: [v.split(":", 1)[-1] for v in values] for g, values in demo_tag_groups().items()}
    with ws.db.write() as s:
        info = create_project(
            s,
            name=ctx.project,
            task_kind="classification",
            classes=list(DEMO_CLASSES),
            tag_groups=groups,
            annotations_per_clip=3,
            normalization={"lowercase": True, "strip_punctuation": True, "remove_fillers": ["um", "uh"]},
            settings={"demo": True},
        )
    ctx.facts["project_id"] = info.id
    ctx.facts["conventions"] = DEMO_CONVENTIONS
    return f"created project {info.name!r} ({len(info.classes)} classes, k={info.annotations_per_clip})"


def step_initial_batch(ws: Workspace, ctx: DemoContext) -> str:
    """Demo step: synthesise the speech, mix in noise and channels, and import it."""
    report = import_corpus_batch(ws, ctx, batch="initial", labelled=True, size=ctx.size)
    ctx.facts["initial_batch_id"] = report.batch_id
    return f"initial batch: {report.summary()}"


DEMO_STEPS: list[Callable[[Workspace, DemoContext], str]] = [
    step_project,
    step_initial_batch,
    step_annotators,
    step_model_run,
    step_improve_weakest_slice,
    step_production_batches,
    step_regions_project,
]


def step_title(step: Callable[..., str]) -> str:
    """A step's first docstring line, without its "Demo step:" prefix."""
    first = (step.__doc__ or step.__name__).strip().splitlines()[0]
    title = first.removeprefix("Demo step:").strip().rstrip(".")
    return title[:1].upper() + title[1:]


@dataclass
class DemoReport:
    project: str
    created: bool
    lines: list[str]
    seconds: float


def create_demo(
    ws: Workspace,
    *,
    project: str = DEMO_PROJECT,
    regions_project: str = DEMO_REGIONS_PROJECT,
    if_empty: bool = False,
    size: str | int = "standard",
    random_state: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
    on_step: Callable[[int, int, str, str | None], None] | None = None,
) -> DemoReport:
    """Create the demo project and, beside it, ``regions_project`` (long recordings, see
    :mod:`labeling.demo.recordings`). With ``if_empty``, do nothing when any project already exists.

    ``progress(stage, done, total)`` reports the work inside each step; ``on_step(number, n_steps,
    title, result)`` is told of each step as it starts (``result`` None) and as it ends (its line).
    """
    started = time.perf_counter()
    with ws.db.read() as s:
        if if_empty and count_projects(s) > 0:
            return DemoReport(project, False, ["the database already has projects; no demo created"], 0.0)
        for name in (project, regions_project):
            try:
                get_project(s, name)
            except ProjectNotFound:
                pass
            else:
                raise ProjectError(f"a project named {name!r} already exists")
    ctx = DemoContext(project=project, size=size, random_state=random_state, progress=progress)
    ctx.facts["regions_project"] = regions_project
    tell = on_step or (lambda number, n, title, result: None)
    lines = []
    try:
        for number, step in enumerate(DEMO_STEPS, 1):
            tell(number, len(DEMO_STEPS), step_title(step), None)
            lines.append(step(ws, ctx))
            tell(number, len(DEMO_STEPS), step_title(step), lines[-1])
    except BaseException:
        # A demo that stopped half-way would mislead every page: remove what was made.
        with ws.db.write() as s:
            s.execute(delete(Project).where(Project.name.in_([project, regions_project])))
        raise
    return DemoReport(project, True, lines, time.perf_counter() - started)
