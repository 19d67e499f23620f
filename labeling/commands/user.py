"""``earmark user add|list|passwd|role|disable|enable``: accounts and roles.

A new password is read from standard input with ``--password-stdin`` (first line), otherwise one is
generated and printed once; it is never stored in clear.
"""

from __future__ import annotations

import argparse
import sys

from labeling.commands import UserError, print_json, user_errors, workspace

ROLE_CHOICES = ("annotator", "reviewer", "engineer", "admin")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("user", help="add users, list them, set passwords and roles")
    usub = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)

    add = usub.add_parser("add", help="add a user (no self-signup: accounts are made here)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLE_CHOICES)
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument(
        "--no-password",
        action="store_true",
        help="no password: signs in only through the trusted proxy header, or labels via the API",
    )
    add.add_argument("--external-id", help="the identity a trusted proxy sends (EARMARK_TRUSTED_HEADER)")
    add.set_defaults(run=add_)

    ls = usub.add_parser("list", help="list users and their roles")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=list_)

    pw = usub.add_parser("passwd", help="set a new password (ends the user's open sessions)")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    pw.set_defaults(run=passwd)

    role = usub.add_parser("role", help="change a user's role")
    role.add_argument("name")
    role.add_argument("role", choices=ROLE_CHOICES)
    role.set_defaults(run=set_role)

    for action, active in (("disable", False), ("enable", True)):
        q = usub.add_parser(action, help=f"{action} an account (accounts are never deleted)")
        q.add_argument("name")
        q.set_defaults(run=set_active, active=active)


def _new_password(from_stdin: bool) -> tuple[str, bool]:
    """(password, generated)."""
    from labeling.platform.auth import generate_password

    if not from_stdin:
        return generate_password(), True
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise UserError("no password on standard input")
    return line, False


def add_(args: argparse.Namespace) -> int:
    from labeling.platform.auth import AuthError, add_user

    if args.no_password and args.password_stdin:
        raise UserError("choose --password-stdin or --no-password, not both")
    password, generated = (None, False) if args.no_password else _new_password(args.password_stdin)
    with workspace() as ws, user_errors(AuthError), ws.db.write() as s:
        info = add_user(s, name=args.name, role=args.role, password=password, external_id=args.external_id)
    print(f"added {info.role} {info.name!r} (id {info.id})")
    if generated:
        print(f"password: {password}")
        print("(shown once: pass it on now; change it with earmark user passwd)", file=sys.stderr)
    return 0


def list_(args: argparse.Namespace) -> int:
    from labeling.platform.auth import list_users

    with workspace() as ws, ws.db.read() as s:
        users = list_users(s)
    if args.json:
        print_json([u.to_dict() for u in users])
    elif not users:
        print("no users yet: earmark user add NAME --role admin")
    else:
        for u in users:
            how = "password" if u.has_password else ("proxy" if u.external_id else "no sign-in")
            state = "" if u.active else "\tdisabled"
            print(f"{u.name}\t{u.role}\t{how}{state}")
    return 0


def passwd(args: argparse.Namespace) -> int:
    from labeling.platform.auth import AuthError, set_password

    password, generated = _new_password(args.password_stdin)
    with workspace() as ws, user_errors(AuthError), ws.db.write() as s:
        info = set_password(s, args.name, password)
    print(f"password of {info.name!r} changed")
    if generated:
        print(f"password: {password}")
    return 0


def set_role(args: argparse.Namespace) -> int:
    from labeling.platform.auth import AuthError, update_user

    with workspace() as ws, user_errors(AuthError), ws.db.write() as s:
        info = update_user(s, args.name, role=args.role)
    print(f"{info.name!r} is now {info.role}")
    return 0


def set_active(args: argparse.Namespace) -> int:
    from labeling.platform.auth import AuthError, update_user

    with workspace() as ws, user_errors(AuthError), ws.db.write() as s:
        info = update_user(s, args.name, active=args.active)
    print(f"{info.name!r} is {'enabled' if info.active else 'disabled'}")
    return 0
