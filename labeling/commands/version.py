"""``earmark version create|list|diff``: freeze, list and compare dataset versions."""

from __future__ import annotations

import argparse

from labeling.commands import print_json, user_errors, workspace


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "version",
        help="dataset versions: freeze the current labels, list them, diff two",
        description="A dataset version is an immutable snapshot of every clip's final label, tags and "
        "split, with a content hash; identical data is never frozen twice.",
    )
    vsub = p.add_subparsers(dest="version_command", metavar="ACTION", required=True)

    c = vsub.add_parser("create", help="freeze the project's current final labels as a new version")
    c.add_argument("--project", required=True, help="project name or id")
    c.add_argument("--name", required=True, help="the version's name, unique in the project")
    c.add_argument("--note", default="", help="why this version exists")
    c.add_argument("--parent", default="latest", help="parent version name or id (default: the latest)")
    c.add_argument("--no-parent", action="store_true", help="a root version with no parent")
    c.add_argument(
        "--include-unresolved", action="store_true", help="also clips without a final label (default: not)"
    )
    c.add_argument("--min-agreement", type=float, metavar="SHARE", help="minimum agreement (0-1)")
    c.add_argument("--exclude-flagged", action="store_true", help="leave out clips with an open flag")
    c.add_argument("--exclude-augmented", action="store_true", help="leave out augmented clips")
    c.add_argument("--json", action="store_true", help="print the version as JSON")
    c.set_defaults(run=run_create)

    ls = vsub.add_parser("list", help="the project's versions, oldest first")
    ls.add_argument("--project", required=True, help="project name or id")
    ls.add_argument(
        "--snapshots",
        action="store_true",
        help="also list the snapshots of the current labels that runs froze when they trained",
    )
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=run_list)

    d = vsub.add_parser("diff", help="what changed between two versions")
    d.add_argument("--project", required=True, help="project name or id")
    d.add_argument("a", help="the older version (name or id)")
    d.add_argument("b", help="the newer version (name or id)")
    d.add_argument("--json", action="store_true")
    d.set_defaults(run=run_diff)


def _errors():
    from labeling.data.export import ExportError
    from labeling.data.projects import ProjectError
    from labeling.data.versions import VersionError

    return user_errors(VersionError, ProjectError, ExportError)


def run_create(args: argparse.Namespace) -> int:
    from labeling.data.versions import VersionFilters, create_version

    with workspace() as ws, _errors():
        filters = VersionFilters(
            resolved_only=not args.include_unresolved,
            min_agreement=args.min_agreement,
            exclude_flagged=args.exclude_flagged,
            include_augmented=not args.exclude_augmented,
        )
        with ws.db.write() as s:
            info = create_version(
                s,
                args.project,
                name=args.name,
                note=args.note,
                filters=filters,
                parent=None if args.no_parent else args.parent,
            )
    if args.json:
        print_json(info.to_dict())
    else:
        print(info.summary())
    return 0


def run_list(args: argparse.Namespace) -> int:
    from labeling.data.versions import list_versions

    with workspace() as ws, _errors(), ws.db.read() as s:
        frame = list_versions(s, args.project, include_snapshots=args.snapshots)
    if args.json:
        print_json(frame.assign(created_at=frame["created_at"].astype(str)).to_dict("records"))
    elif frame.empty:
        print("no dataset versions yet; make one with `earmark version create`")
    else:
        cols = ["id", "name", "parent", "n_clips", "added", "removed", "relabelled", "augmented", "note"]
        print(frame.assign(content_hash=frame["content_hash"].str[:12])[cols].to_string(index=False))
    return 0


def run_diff(args: argparse.Namespace) -> int:
    from labeling.data.versions import diff_versions, get_version

    with workspace() as ws, _errors(), ws.db.read() as s:
        a = get_version(s, args.project, args.a)
        b = get_version(s, args.project, args.b)
        diff = diff_versions(s, a.id, b.id)
    summary = diff.summary()
    if args.json:
        print_json(
            {
                "a": a.name,
                "b": b.name,
                **summary,
                "added_clips": diff.added["clip_id"].tolist(),
                "removed_clips": diff.removed["clip_id"].tolist(),
                "relabelled": diff.relabelled.to_dict("records"),
                "by_tag": diff.by_tag.to_dict("records"),
            }
        )
        return 0
    print(
        f"{a.name} → {b.name}: +{summary['added']} -{summary['removed']} clips, {summary['relabelled']} "
        f"relabelled, {summary['retagged']} re-tagged, {summary['resplit']} re-split"
    )
    changed = diff.by_tag[diff.by_tag["delta"] != 0]
    if not changed.empty:
        print("\nclips per tag:\n" + changed.to_string(index=False))
    return 0
