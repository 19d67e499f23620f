"""``earmark drift``, ``earmark monitor`` and ``earmark live``: production batches against the
live model's reference (production batches come in with ``earmark import --production``)."""

from __future__ import annotations

import argparse

from labeling.commands import UserError, print_json, user_errors, workspace
from labeling.commands._stages import StageReporter
from labeling.platform.ids import row_id


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drift",
        help="check a production batch for drift against the live model's reference",
        description="Compare a production batch with the reference (a dataset version's dev/test clips; "
        "default: the version the live model was trained on) measure by measure, jointly (MMD) and on "
        "the model's outputs, and store the check. Prints the level and why: none (no drift), warning "
        "(one drifted batch), alarm (two drifted batches in a row, a p-value under the project's "
        "alarm_p, or the accuracy on the labelled random sample changed, or for a transcription "
        "project its word error rate) or too_small (fewer clips than the project's min_batch: no "
        "verdict, never an alarm). Always exits 0 once the check is "
        "stored; earmark monitor is the one that pages.",
    )
    p.add_argument("--project", required=True, help="project name or id")
    p.add_argument("--batch", required=True, help="production batch name (or id)")
    p.add_argument("--reference", help="dataset version (name or id) to compare with instead")
    p.add_argument("--json", action="store_true", help="print the check as JSON")
    p.set_defaults(run=run_drift)

    m = sub.add_parser(
        "monitor",
        help="every production batch's drift level; exits 1 while an alarm stands",
        description="Summarise the drift checks of every production batch: its level (none, warning, "
        "alarm, too_small, or unchecked), why, and its labelled random sample's accuracy. Exits 1 "
        "while an alarm stands on any batch (not acknowledged or snoozed), whatever later batches "
        "show, so a cron job can page someone however seldom it runs; a too_small batch has no "
        "verdict and never pages.",
    )
    m.add_argument("--project", required=True, help="project name or id")
    m.add_argument("--json", action="store_true", help="print the summary as JSON")
    m.set_defaults(run=run_monitor)

    live = sub.add_parser(
        "live",
        help="mark a run as the deployed (live) model",
        description="Mark a run as the model in production. Its reference for drift checks (default: "
        "the dataset version it was trained on) is frozen with it; folders of production audio "
        "are scored by it.",
    )
    live.add_argument("--project", required=True, help="project name or id")
    live.add_argument(
        "--run", dest="run_id", type=row_id, required=True, help="the run's id (earmark runs list)"
    )
    live.add_argument("--reference", help="dataset version (name or id) to measure drift against")
    live.set_defaults(run=run_live)


def _fmt_p(p: object) -> str:
    return "p = —" if not isinstance(p, int | float) else (f"p = {p:.3g}" if p >= 0.001 else "p < 0.001")


def run_drift(args: argparse.Namespace) -> int:
    from labeling.data.projects import ProjectError
    from labeling.monitor.drift import run_drift_check
    from labeling.monitor.settings import MonitoringError

    report = StageReporter(quiet=args.json)
    with workspace() as ws, user_errors(MonitoringError, ProjectError):
        try:
            result = run_drift_check(ws, args.project, args.batch, reference=args.reference, progress=report)
        finally:
            report.close()
    d = result.to_dict()
    if args.json:
        print_json(d)
        return 0
    print(
        f"batch {result.batch!r}: {result.level.upper()} ({d.get('n_batch', 0):,} clips "
        f"against {d.get('n_reference', 0):,} reference clips)"
    )
    for reason in result.reasons:
        print(f"  {reason}")
    if result.accuracy_note and result.accuracy_note not in result.reasons:
        print(f"  {result.accuracy_note}")
    wer_note = (d.get("wer") or {}).get("reason")
    if wer_note and wer_note not in result.reasons:
        print(f"  {wer_note}")
    for m in d.get("measures", []):
        mark = "DRIFT" if m.get("drift") else "     "
        effect = m.get("effect")
        effect_s = "—" if effect is None else f"{effect:+.3g} {m.get('effect_unit') or ''}".rstrip()
        p = _fmt_p(m.get("p_value"))
        print(f"  {mark} {m['name']:<22} {m.get('test', ''):<26} {p:<11} effect {effect_s}")
    return 0


def run_monitor(args: argparse.Namespace) -> int:
    from labeling.data.projects import ProjectError
    from labeling.monitor.alarms import missing_labels_note, monitor_summary
    from labeling.monitor.settings import MonitoringError

    with workspace() as ws, user_errors(MonitoringError, ProjectError):
        summary = monitor_summary(ws, args.project)
    if args.json:
        print_json(summary.to_dict())
        return 1 if summary.alarm else 0
    live = f"live model {summary.live_model!r}" if summary.live_model else "no live model marked"
    print(f"project {summary.project!r}: {live}; reference {summary.reference_version or '—'}")
    if summary.batches.empty:
        print("  no production batches yet (earmark import LOG --project P --production --batch NAME)")
    for row in summary.batches.itertuples():
        ack = " (acknowledged)" if row.acknowledged else ""
        print(f"  {row.name:<24} {row.n:>7,} clips  {row.level}{ack}  {row.reasons}")
        note = row.accuracy_note
        if isinstance(note, str) and note and note not in row.reasons:
            print(f"  {'':<24} {'':>13}  {note}")
        if row.level != "unchecked" and row.labels_missing:
            print(f"  {'':<24} {'':>13}  {missing_labels_note(int(row.labels_missing), summary.min_labels)}")
    if summary.snoozed_until:
        print(f"alarms snoozed until {summary.snoozed_until:%Y-%m-%d %H:%M} UTC")
    for reason in summary.reasons:
        print("ALARM: " + reason)
    return 1 if summary.alarm else 0


def run_live(args: argparse.Namespace) -> int:
    from labeling.data.projects import ProjectError
    from labeling.monitor.live import mark_live
    from labeling.monitor.settings import MonitoringError

    with workspace() as ws, user_errors(MonitoringError, ProjectError):
        info = mark_live(ws, args.project, args.run_id, reference=args.reference)
    ref = info.reference_version or "none (name one with --reference)"
    print(f"run {info.run_id} ({info.run_name}) is live; drift reference: {ref}")
    if info.reference_version is None:
        raise UserError("the live model has no reference version; drift checks need --reference")
    return 0
