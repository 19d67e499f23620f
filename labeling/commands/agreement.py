"""``earmark agreement``: the inter-annotator agreement report of a project, or of any long CSV.

For a ``regions`` project it prints region agreement instead: frame kappas, unitizing alpha and
onset/offset F1 (:mod:`labeling.quality.region_agreement`)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

from labeling.commands import UserError, print_json, user_errors, workspace

LEVELS = ("nominal", "ordinal", "interval", "ratio")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "agreement",
        help="inter-annotator agreement: Krippendorff's alpha, Fleiss' and Cohen's kappa, per-class",
        description=(
            "Agreement of a project's annotators (--project), or of any CSV with one row per rating "
            "(--from-csv FILE, columns named by --item, --rater and --value)."
        ),
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--project", help="project name or id")
    source.add_argument("--from-csv", type=Path, metavar="FILE", help="long CSV: one row per rating")
    p.add_argument("--item", default="clip_id", help="CSV column of the rated item (default: clip_id)")
    p.add_argument("--rater", default="annotator", help="CSV column of the rater (default: annotator)")
    p.add_argument("--value", default="label", help="CSV column of the rating (default: label)")
    p.add_argument("--level", choices=LEVELS, default="nominal", help="level of measurement for alpha")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for alpha's interval")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.2,
        help="regions projects: seconds an onset or offset may differ and still match (default: 0.2)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a readable summary")
    p.set_defaults(run=run)


def read_ratings_csv(path: Path, *, columns: tuple[str, str, str]) -> Any:
    """The CSV as a DataFrame of strings (empty cells are missing ratings), or a :class:`UserError`."""
    import pandas as pd

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path} is not UTF-8 text (invalid byte at position {exc.start}); save it as UTF-8"
        ) from exc
    if not text.strip():
        raise UserError(f"{path} is empty: expected a header row and one row per rating")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path} is not a readable CSV: {exc}") from exc
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise UserError(
            f"{path} lacks the column(s) {names}; its columns are {', '.join(map(repr, frame.columns))} "
            "(name yours with --item, --rater and --value)"
        )
    if frame.empty:
        raise UserError(f"{path} has a header but no ratings")
    item, rater, _ = columns
    if frame[item].isna().any() or frame[rater].isna().any():
        raise UserError(f"{path}: every row needs an {item!r} and a {rater!r}")
    return frame


def _fmt(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _summary(d: dict[str, Any]) -> str:
    lo, hi = d["krippendorff_alpha_ci"]
    ci = f" ({round(100 * d['ci'])}% CI {_fmt(lo)} to {_fmt(hi)})" if lo is not None else ""
    fleiss = _fmt(d["fleiss_kappa"]) if d["fleiss_kappa"] is not None else "n/a (raters per item differ)"
    lines = [
        f"{d['n_items']} items, {d['n_raters']} raters, {d['n_ratings']} ratings, "
        f"{d['n_pairable_items']} items with two or more ratings",
        f"Krippendorff's alpha ({d['level']}): {_fmt(d['krippendorff_alpha'])}{ci}",
        f"Fleiss' kappa: {fleiss}",
        f"Percent agreement: {_fmt(d['percent_agreement'])}",
    ]
    if d["cohen_kappa_pairs"]:
        lines.append("Cohen's kappa by pair:")
        lines += [
            f"  {p['rater_a']} / {p['rater_b']}: {_fmt(p['kappa'])} (n={p['n']})"
            for p in d["cohen_kappa_pairs"]
        ]
    value_key = next((k for k in (d["per_class"][0] if d["per_class"] else {}) if k not in _PER_CLASS), None)
    if value_key is not None:
        lines.append("Per class (specific agreement):")
        lines += [
            f"  {row[value_key]}: {_fmt(row['specific_agreement'])} (n={row['n']})" for row in d["per_class"]
        ]
    return "\n".join(lines)


_PER_CLASS = {"n", "n_items", "specific_agreement", "alpha"}


def _project_extra(d: dict[str, Any]) -> str:
    lines = []
    if d["annotators"]:
        lines.append("Annotators (agreement with the others' consensus):")
        lines += [
            f"  {a['annotator']}: {_fmt(a['agreement_with_consensus'])} over {a['n_consensus']} clips"
            for a in d["annotators"]
        ]
    if d["by_version"]:
        lines.append("By conventions version:")
        lines += [
            f"  v{v['version']}: alpha {_fmt(v['krippendorff_alpha'])} over {v['n_items']} clips"
            for v in d["by_version"]
        ]
    if d["transcripts"]:
        o = d["transcripts"]["overall"]
        lines.append(f"Transcripts: WER {_fmt(o['wer'])}, CER {_fmt(o['cer'])} over {o['n_pairs']} pairs")
    return "\n".join(lines)


def _shared(pair: dict[str, Any]) -> str:
    """How many recordings a pair's figure rests on (reports stored before pairs carried it: nothing)."""
    n = pair.get("n_recordings")
    return "" if n is None else f" (on {n} recording{'s' if n != 1 else ''})"


def _region_summary(d: dict[str, Any], tolerance: float) -> str:
    lines = [f"Project {d['project']!r}: time regions"]
    left = "; ".join(f"{n} recording(s) {why}" for why, n in d["left_out"].items())
    if not d["n_recordings"]:
        return "\n".join(
            [
                *lines,
                "No recording has regions of two or more annotators yet." + (f" ({left})" if left else ""),
            ]
        )
    spread = (d.get("coverage") or {}).get("annotators_per_recording") or {}
    lines += [
        f"{d['n_recordings']} recordings labelled by {', '.join(d['annotators'])}"
        + (f" ({', '.join(f'{n} by {k}' for k, n in spread.items())})" if len(spread) > 1 else "")
        + (f"; left out: {left}" if left else ""),
        f"Unitizing alpha (uα): {_fmt(d['unitizing_alpha'])}",
        f"Fleiss' kappa over 10 ms frames: {_fmt(d['fleiss_kappa'])}",
    ]
    if d["unitizing_by_class"]:
        lines.append("uα by class:")
        lines += [
            f"  {r['label']}: {_fmt(r['alpha'])} ({r['n_units']} units)" for r in d["unitizing_by_class"]
        ]
    if d["cohen_kappa_pairs"]:
        lines.append("Cohen's kappa over frames, by pair:")
        lines += [
            f"  {p['rater_a']} / {p['rater_b']}: {_fmt(p['kappa'])}{_shared(p)}"
            for p in d["cohen_kappa_pairs"]
        ]
    if d["boundaries"]:
        lines.append(f"Boundary F1 within ±{tolerance * 1000:.0f} ms, by pair:")
        lines += [f"  {b['rater_a']} / {b['rater_b']} {b['kind']}: {_fmt(b['f1'])}" for b in d["boundaries"]]
    if d.get("diarization_pairs"):
        lines.append("DER / JER by pair (the first as reference, classes as speakers):")
        lines += [
            f"  {p['rater_a']} / {p['rater_b']}: DER {_fmt(p['der'])}, JER {_fmt(p['jer'])}{_shared(p)}"
            for p in d["diarization_pairs"]
        ]
    worst = d["by_recording"][:3]
    if worst:
        lines.append("Least agreement (Fleiss' kappa per recording):")
        lines += [f"  {r['recording']}: {_fmt(r['fleiss_kappa'])}" for r in worst]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.n_boot < 0:
        raise UserError("--n-boot cannot be negative")
    if args.from_csv is not None:
        from analysis.agreement import agreement_report

        frame = read_ratings_csv(args.from_csv, columns=(args.item, args.rater, args.value))
        with user_errors(ValueError):
            report = agreement_report(
                frame,
                item=args.item,
                rater=args.rater,
                value=args.value,
                level=args.level,
                n_boot=args.n_boot,
                random_state=args.seed,
            ).to_dict()
        if args.json:
            print_json(report)
        else:
            print(_summary(report))
        return 0

    from labeling.data.projects import ProjectError, get_project
    from labeling.quality.agreement_service import agreement_json, stored_agreement
    from labeling.quality.region_agreement import region_agreement_view

    if args.tolerance < 0:
        raise UserError("--tolerance cannot be negative")
    with workspace() as ws, user_errors(ProjectError, ValueError):
        with ws.db.read() as s:
            info = get_project(s, args.project)
        # The stored report while the regions are unchanged (a worker keeps it current), else computed.
        regions = (
            dict(region_agreement_view(ws.db, info.id, tolerance=args.tolerance).value)
            if info.labels_regions
            else None
        )
    if regions is not None:
        if args.json:
            print_json(regions)
        else:
            print(_region_summary(regions, args.tolerance))
        return 0
    with workspace() as ws, user_errors(ProjectError, ValueError):
        report = stored_agreement(
            ws.db, args.project, level=args.level, n_boot=args.n_boot, random_state=args.seed
        )
        result = agreement_json(report)
    if args.json:
        print_json(result)
    else:
        print(f"Project {result['project']!r}")
        print(_summary(result))
        extra = _project_extra(result)
        if extra:
            print(extra)
    return 0
