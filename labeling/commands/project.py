"""``earmark project create|list|show``."""

from __future__ import annotations

import argparse

from labeling.commands import print_json, user_errors, workspace


def _tag_groups(text: str | None) -> dict[str, list[str]]:
    """``noise=car,people,none;channel=low-bandwidth`` -> {"noise": [...], "channel": [...]}."""
    groups: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(";"))):
        group, _, values = part.partition("=")
        groups[group.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return groups


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("project", help="create and list projects")
    psub = p.add_subparsers(dest="project_command", metavar="ACTION", required=True)
    c = psub.add_parser("create", help="create a project")
    c.add_argument("name")
    c.add_argument(
        "--kind", default="classification", choices=["classification", "transcription", "both", "regions"]
    )
    c.add_argument("--classes", default="", help="comma-separated class names")
    c.add_argument("--tags", default="", help="tag vocabulary: 'noise=car,people;channel=low-bandwidth'")
    c.add_argument("--k", type=int, default=1, help="annotations required per clip (default 1)")
    c.set_defaults(run=create)
    ls = psub.add_parser("list", help="list projects")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=list_)
    show = psub.add_parser("show", help="show one project's settings and counts")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=show_)


def create(args: argparse.Namespace) -> int:
    from labeling.data.projects import ProjectError, create_project

    with workspace() as ws, user_errors(ProjectError), ws.db.write() as s:
        info = create_project(
            s,
            name=args.name,
            task_kind=args.kind,
            classes=[c.strip() for c in args.classes.split(",") if c.strip()],
            tag_groups=_tag_groups(args.tags),
            annotations_per_clip=args.k,
        )
    print(f"created project {info.name!r} (id {info.id}, {info.task_kind}, k={info.annotations_per_clip})")
    return 0


def list_(args: argparse.Namespace) -> int:
    from labeling.data.clips import project_summary
    from labeling.data.projects import list_projects

    with workspace() as ws, ws.db.read() as s:
        rows = [{**p.to_dict(), **project_summary(s, p.id)} for p in list_projects(s)]
    if args.json:
        print_json(rows)
    elif not rows:
        print("no projects yet: earmark demo, or earmark import PATH --project NAME")
    else:
        for r in rows:
            print(f"{r['name']}\t{r['task_kind']}\t{r['n_clips']:,} clips\t{r['hours']:.2f} h")
    return 0


def show_(args: argparse.Namespace) -> int:
    from labeling.data.clips import project_summary
    from labeling.data.projects import ProjectError, get_project

    with workspace() as ws, user_errors(ProjectError), ws.db.read() as s:
        info = get_project(s, args.name)
        # The order the queue uses, also for a project that never chose one (settings omit defaults).
        row = {**info.to_dict(), "queue_order": info.queue_order.name, **project_summary(s, info.id)}
    if args.json:
        print_json(row)
    else:
        for key, value in row.items():
            print(f"{key}: {value}")
    return 0
