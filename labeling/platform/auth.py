"""Accounts, passwords, sessions and the role policy.

Call :func:`add_user` / :func:`set_password` to manage accounts, :func:`sign_in` to check a password
(throttled per account and client together, with far higher ceilings per account and per client;
failures audited) and start a server-side session,
:func:`user_for_token` on every rerun to find who is signed in, :func:`end_session` to sign out, and
:func:`can_open` to decide whether a role may open a page. Passwords are hashed with argon2id; the
hash never leaves this module (:class:`UserInfo` has no hash, the audit log records no password).

Roles, from least to most trusted:

============  ===============================================================================
annotator     labels clips and reads the conventions; never sees other people's labels
reviewer      also resolves disagreements, edits conventions and gold examples, reads reports
engineer      also imports data, analyses errors, trains, watches drift, exports
admin         everything, including accounts
============  ===============================================================================

A trusted reverse proxy may assert who the user is in a header (``EARMARK_TRUSTED_HEADER``; see
:func:`user_for_header`). Only enable it when the app is reachable through that proxy alone.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from db.models import ROLES, AuthSession, SignInFailure, User
from labeling.platform.audit import record
from labeling.platform.config import Settings
from labeling.platform.names import validate_name

MIN_PASSWORD_LENGTH = 8
SESSION_MAX_AGE_S = 12 * 3600

ALL_ROLES: frozenset[str] = frozenset(ROLES)
STAFF: frozenset[str] = frozenset({"reviewer", "engineer", "admin"})

#: What each role may do. Pages and services ask :func:`allowed` with one of these names.
PERMISSIONS: Mapping[str, frozenset[str]] = {
    "label": ALL_ROLES,
    "read_conventions": ALL_ROLES,
    "edit_conventions": STAFF,
    "review": frozenset({"reviewer", "admin"}),
    "analyse": STAFF,
    "manage_data": frozenset({"engineer", "admin"}),
    "edit_settings": frozenset({"engineer", "admin"}),
    "manage_users": frozenset({"admin"}),
}

#: Which permission opens which page (keyed by the page's URL path, i.e. its file stem).
#: A page missing here is open to staff only, so a new page never leaks to annotators by accident.
PAGE_PERMISSIONS: Mapping[str, str] = {
    "label": "label",
    "my_labels": "label",
    "conventions": "read_conventions",
    "overview": "analyse",
    "clips": "analyse",
    "import_audio": "manage_data",
    "export": "manage_data",
    "data": "manage_data",
    "error_analysis": "manage_data",
    "runs": "manage_data",
    "jobs": "manage_data",
    "review": "review",
    "settings": "edit_settings",
    "monitoring": "manage_data",
}
DEFAULT_PAGE_PERMISSION = "analyse"

#: Demo accounts and their published passwords (``earmark demo``); the login page warns while any
#: of them still accepts its published password.
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("ana", "annotator", "ana-demo"),
    ("ben", "annotator", "ben-demo"),
    ("cho", "annotator", "cho-demo"),
    ("rosa", "reviewer", "rosa-demo"),
    ("eli", "engineer", "eli-demo"),
    ("admin", "admin", "admin-demo"),
)

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    # Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
    return _hasher.hash(secrets.token_hex(16))


class AuthError(ValueError):
    """An account request that cannot be honoured; the message says why."""


class UserNotFound(AuthError):
    pass


class PermissionDenied(PermissionError):
    """The signed-in role may not do this."""


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    role: str
    active: bool
    has_password: bool
    external_id: str | None = None
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat() if self.created_at else None
        return d


def _info(u: User) -> UserInfo:
    return UserInfo(
        id=u.id,
        name=u.name,
        role=u.role,
        active=u.active,
        has_password=u.password_hash is not None,
        external_id=u.external_id,
        created_at=u.created_at,
    )


# --- roles -------------------------------------------------------------------------------------------


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AuthError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def allowed(role: str | None, permission: str) -> bool:
    """Whether ``role`` holds ``permission`` (unknown permissions are refused)."""
    return role is not None and role in PERMISSIONS.get(permission, frozenset())


def require(user: UserInfo | None, permission: str) -> UserInfo:
    """Return ``user`` if it holds ``permission``; raise :class:`PermissionDenied` otherwise."""
    if user is None or not user.active:
        raise PermissionDenied("sign in first")
    if not allowed(user.role, permission):
        raise PermissionDenied(f"the {user.role} role may not {permission.replace('_', ' ')}")
    return user


def page_permission(page: str) -> str:
    return PAGE_PERMISSIONS.get(page, DEFAULT_PAGE_PERMISSION)


def can_open(role: str | None, page: str) -> bool:
    """Whether ``role`` may open the page whose URL path (file stem) is ``page``."""
    return allowed(role, page_permission(page))


# --- passwords ---------------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AuthError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password or "") and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """A random password of about 96 bits, easy to copy (URL-safe characters only)."""
    return secrets.token_urlsafe(12)


# --- accounts ----------------------------------------------------------------------------------------


def _user_row(s: Session, ref: str | int) -> User:
    row = s.get(User, ref) if isinstance(ref, int) else None
    if row is None:
        row = s.scalar(select(User).where(User.name == str(ref)))
    if row is None:
        raise UserNotFound(f"no user named {ref!r}; add one with: earmark user add NAME --role ROLE")
    return row


def get_user(s: Session, ref: str | int) -> UserInfo:
    """A user by id (int) or name (str)."""
    return _info(_user_row(s, ref))


def list_users(s: Session) -> list[UserInfo]:
    return [_info(u) for u in s.scalars(select(User).order_by(User.name))]


def count_users(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(User)) or 0)


def add_user(
    s: Session,
    *,
    name: str,
    role: str = "annotator",
    password: str | None = None,
    external_id: str | None = None,
    actor_id: int | None = None,
) -> UserInfo:
    """Create an account. Without a password (or external identity) it exists but cannot sign in."""
    name = validate_name(name, what="user name", error=AuthError)
    check_role(role)
    if s.scalar(select(User.id).where(User.name == name)) is not None:
        raise AuthError(f"a user named {name!r} already exists")
    if external_id is not None:
        external_id = validate_name(external_id, what="external identity", error=AuthError)
        if s.scalar(select(User.id).where(User.external_id == external_id)) is not None:
            raise AuthError(f"another user already has the external identity {external_id!r}")
    user = User(
        name=name,
        role=role,
        password_hash=hash_password(password) if password is not None else None,
        external_id=external_id,
        active=True,
    )
    s.add(user)
    s.flush()
    record(
        s,
        entity="user",
        entity_id=user.id,
        action="create",
        new={"name": name, "role": role, "external_id": external_id, "password": password is not None},
        actor_id=actor_id,
    )
    return _info(user)


def set_password(s: Session, ref: str | int, password: str, *, actor_id: int | None = None) -> UserInfo:
    """Replace a user's password; sessions signed in with the old one end."""
    user = _user_row(s, ref)
    user.password_hash = hash_password(password)
    s.flush()
    end_sessions(s, user.id)
    record(
        s, entity="user", entity_id=user.id, action="update", new={"password": "changed"}, actor_id=actor_id
    )
    return _info(user)


def update_user(
    s: Session,
    ref: str | int,
    *,
    role: str | None = None,
    active: bool | None = None,
    actor_id: int | None = None,
) -> UserInfo:
    """Change a user's role or switch the account off (accounts are never deleted: labels keep them)."""
    user = _user_row(s, ref)
    before = {"role": user.role, "active": user.active}
    if role is not None:
        user.role = check_role(role)
    if active is not None:
        user.active = bool(active)
        if not user.active:
            end_sessions(s, user.id)  # so switching it back on later revives none of them
    after = {"role": user.role, "active": user.active}
    if after != before:
        s.flush()
        record(s, entity="user", entity_id=user.id, action="update", old=before, new=after, actor_id=actor_id)
    return _info(user)


def authenticate(s: Session, name: str, password: str) -> UserInfo | None:
    """The active user with this name and password, or None (the same for every kind of failure)."""
    user = s.scalar(select(User).where(User.name == (name or "").strip()))
    ok = verify_password(user.password_hash if user is not None else None, password)
    if user is None or not ok or not user.active:
        return None
    return _info(user)


def user_for_header(s: Session, value: str | None) -> UserInfo | None:
    """The active user a trusted proxy names in its header: matched on external identity, then name.

    Unknown identities get no account automatically; an admin adds them
    (``earmark user add NAME --role ROLE --external-id VALUE``).
    """
    value = (value or "").strip()
    if not value:
        return None
    user = s.scalar(select(User).where(User.external_id == value))
    if user is None:
        user = s.scalar(select(User).where(User.name == value))
    if user is None or not user.active:
        return None
    return _info(user)


# --- sessions ----------------------------------------------------------------------------------------


def _sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _session_id(nonce: str) -> str:
    # Only a hash of the nonce is stored: a copy of the database signs nobody in.
    return hashlib.sha256(nonce.encode()).hexdigest()


def _at(epoch: float | None) -> datetime:
    return datetime.fromtimestamp(epoch if epoch is not None else time.time(), UTC)


def issue_session_token(
    s: Session, user_id: int, secret: str, *, now: float | None = None, max_age_s: int = SESSION_MAX_AGE_S
) -> str:
    """Start a server-side session for the user and return its signed token (write transaction).

    The session ends after ``max_age_s``, at sign-out (:func:`end_session`), or when the account is
    disabled or its password changes (:func:`end_sessions`); re-enabling an account revives none.
    """
    user = _user_row(s, user_id)
    issued = int(now if now is not None else time.time())
    nonce = secrets.token_hex(16)
    s.execute(delete(AuthSession).where(AuthSession.expires_at < _at(issued)))  # keep the table short
    s.add(
        AuthSession(
            id=_session_id(nonce), user_id=user.id, created_at=_at(issued), expires_at=_at(issued + max_age_s)
        )
    )
    s.flush()
    payload = f"{user.id}.{issued}.{nonce}"
    return f"{payload}.{_sign(secret, payload)}"


def _parse_token(token: str | None, secret: str) -> tuple[int, int, str] | None:
    try:
        user_id, issued, nonce, signature = (token or "").split(".")
        payload = f"{user_id}.{issued}.{nonce}"
        if not hmac.compare_digest(signature, _sign(secret, payload)):
            return None
        return int(user_id), int(issued), nonce
    except ValueError:
        return None


def user_for_token(
    s: Session,
    token: str | None,
    secret: str,
    *,
    now: float | None = None,
    max_age_s: int = SESSION_MAX_AGE_S,
) -> UserInfo | None:
    """The active user whose live session the token names, read fresh (a changed role applies at once),
    or None when the token is forged, too old, or its session has ended."""
    parsed = _parse_token(token, secret)
    if parsed is None:
        return None
    user_id, issued, nonce = parsed
    at = _at(now)
    if not 0 <= at.timestamp() - issued <= max_age_s:
        return None
    # One round trip on every rerun: the live session and its active user together.
    user = s.scalar(
        select(User)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(
            AuthSession.id == _session_id(nonce),
            AuthSession.user_id == user_id,
            AuthSession.expires_at >= at,
            User.active.is_(True),
        )
    )
    return None if user is None else _info(user)


def end_session(s: Session, token: str | None, secret: str) -> bool:
    """Sign out: the token's session ends on every server at once. Whether there was one to end."""
    parsed = _parse_token(token, secret)
    if parsed is None:
        return False
    result = s.execute(delete(AuthSession).where(AuthSession.id == _session_id(parsed[2])))
    ended = bool(getattr(result, "rowcount", 0))
    if ended:
        record(s, entity="session", entity_id=parsed[0], action="delete", actor_id=parsed[0])
    return ended


def end_sessions(s: Session, user_id: int) -> int:
    """End every session of a user (disabled account, new password); how many there were."""
    result = s.execute(delete(AuthSession).where(AuthSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


def count_sessions(s: Session, user_id: int, *, now: float | None = None) -> int:
    """The user's live sessions (for the accounts table and tests)."""
    q = select(func.count()).select_from(AuthSession)
    q = q.where(AuthSession.user_id == user_id, AuthSession.expires_at >= _at(now))
    return int(s.scalar(q) or 0)


# --- throttling sign-ins -----------------------------------------------------------------------------

#: Failures allowed within :data:`THROTTLE_WINDOW_S` before each further try must wait: for one
#: account name from one client, then ceilings for an account from all clients together (guessing
#: from many addresses) and for a client over all accounts (one address trying many names). The
#: ceilings are far higher, so wrong passwords from one client neither lock the account's owner out
#: elsewhere nor everyone else behind the same address.
FREE_FAILURES_PER_ACCOUNT_AND_CLIENT = 5
FREE_FAILURES_PER_ACCOUNT = 100
FREE_FAILURES_PER_CLIENT = 100
THROTTLE_WINDOW_S = 15 * 60
FIRST_WAIT_S = 60
MAX_WAIT_S = 15 * 60


@dataclass(frozen=True)
class SignInResult:
    """What a sign-in attempt gave: a user and token, or the reason and how long to wait."""

    user: UserInfo | None
    token: str | None = None
    error: str | None = None
    retry_after_s: int = 0


def _wait_after(failures: int, free: int, last: datetime | None, at: datetime) -> int:
    if failures < free or last is None:
        return 0
    wait = min(FIRST_WAIT_S * 2 ** (failures - free), MAX_WAIT_S)  # 1, 2, 4, 8, then 15 min
    return max(0, int(wait - (at - last).total_seconds() + 0.999))


def sign_in_wait(s: Session, name: str, client: str, *, now: float | None = None) -> int:
    """Seconds before the next sign-in may be tried for this account name from this client.

    Counted in the database, so a reload, a new browser or another app server does not reset it.
    """
    at = _at(now)
    since = at - timedelta(seconds=THROTTLE_WINDOW_S)
    account, client = _account_key(name), client[:100]
    waits = []
    for where, free in (
        (
            (SignInFailure.account == account, SignInFailure.client == client),
            FREE_FAILURES_PER_ACCOUNT_AND_CLIENT,
        ),
        ((SignInFailure.account == account,), FREE_FAILURES_PER_ACCOUNT),
        ((SignInFailure.client == client,), FREE_FAILURES_PER_CLIENT),
    ):
        n, last = s.execute(
            select(func.count(), func.max(SignInFailure.created_at)).where(
                *where, SignInFailure.created_at >= since
            )
        ).one()
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        waits.append(_wait_after(int(n or 0), free, last, at))
    return max(waits)


def _account_key(name: str) -> str:
    return (name or "").strip()[:200]


def sign_in(
    s: Session, name: str, password: str, secret: str, *, client: str, now: float | None = None
) -> SignInResult:
    """Check a name and password from ``client`` (an address) and, if right, start a session.

    Runs in one write transaction: a refused or throttled try is written to ``sign_in_failures`` and
    to the audit log (entity ``sign_in_failure`` with the client and the reason, never the password);
    a success clears the failures of this account from this client and is audited as a new ``session``.
    """
    account, client = _account_key(name), (client or "unknown")[:100]
    at = _at(now)
    # Failures older than the window count for nothing; drop them so the table stays small.
    s.execute(
        delete(SignInFailure).where(SignInFailure.created_at < at - timedelta(seconds=THROTTLE_WINDOW_S))
    )
    wait = sign_in_wait(s, account, client, now=now)
    if wait > 0:
        record(
            s,
            entity="sign_in_failure",
            entity_id=account,
            action="create",
            new={"client": client, "reason": "throttled"},
        )
        return SignInResult(
            None, error=f"Too many failed sign-ins. Try again in {_duration(wait)}.", retry_after_s=wait
        )
    user = authenticate(s, account, password)
    if user is None:
        s.add(SignInFailure(account=account, client=client, created_at=at))
        record(
            s,
            entity="sign_in_failure",
            entity_id=account,
            action="create",
            new={"client": client, "reason": "wrong name or password"},
        )
        return SignInResult(None, error="Wrong name or password.")
    s.execute(delete(SignInFailure).where(SignInFailure.account == account, SignInFailure.client == client))
    record(s, entity="session", entity_id=user.id, action="create", new={"client": client}, actor_id=user.id)
    return SignInResult(user, token=issue_session_token(s, user.id, secret, now=now))


def _duration(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} s"
    return f"{(seconds + 59) // 60} min"


def session_secret(settings: Settings) -> str:
    """``EARMARK_SECRET`` if configured, else a random secret kept in the data directory.

    The file is created once (readable by its owner only), so sessions survive a restart and every
    app process sharing the data directory accepts the same sessions.
    """
    if settings.secret:
        return settings.secret
    settings.require_secret()  # a shared database needs one secret shared by every server
    path = settings.data_dir / ".session-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".session-secret-")  # created 0600
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    try:
        with suppress(FileExistsError):  # the first of two processes starting at once wins
            path.hardlink_to(tmp)
    finally:
        Path(tmp).unlink()
    return path.read_text().strip()


# --- demo --------------------------------------------------------------------------------------------


def create_demo_users(s: Session) -> list[tuple[str, str, str]]:
    """Create the :data:`DEMO_USERS` that do not exist yet; returns (name, role, password) of all of them."""
    existing = set(s.scalars(select(User.name).where(User.name.in_([n for n, _, _ in DEMO_USERS]))))
    for name, role, password in DEMO_USERS:
        if name not in existing:
            add_user(s, name=name, role=role, password=password)
    return list(DEMO_USERS)


def demo_accounts_open(s: Session) -> list[tuple[str, str, str]]:
    """The demo accounts that still accept their published password (the login page shows a banner)."""
    rows = s.execute(
        select(User.name, User.password_hash).where(
            User.name.in_([n for n, _, _ in DEMO_USERS]), User.active.is_(True)
        )
    )
    hashes = {name: password_hash for name, password_hash in rows}
    return [
        (name, role, pw)
        for name, role, pw in DEMO_USERS
        if hashes.get(name) and verify_password(hashes[name], pw)
    ]
