"""Accounts, passwords, sessions, the trusted header, the role policy and ``earmark user``."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from db.models import AuditEvent, SignInFailure, User
from labeling.cli import main
from labeling.platform import auth

SECRET = "test-secret"


def test_passwords_are_stored_as_argon2_hashes_and_checked(workspace):
    with workspace.db.write() as s:
        info = auth.add_user(s, name="ana", role="annotator", password="correct horse")
    assert info.has_password
    assert "password_hash" not in info.to_dict()
    with workspace.db.read() as s:
        stored = s.scalar(select(User.password_hash).where(User.name == "ana"))
        # Verified with argon2-cffi directly, not through our wrapper.
        assert stored.startswith("$argon2id$")
        assert "correct horse" not in stored
        assert PasswordHasher().verify(stored, "correct horse")
        assert auth.authenticate(s, "ana", "correct horse").name == "ana"
        assert auth.authenticate(s, "ana", "wrong horse!") is None
        assert auth.authenticate(s, "nobody", "correct horse") is None
        event = s.scalar(select(AuditEvent).where(AuditEvent.entity == "user"))
        assert event.new == {"name": "ana", "role": "annotator", "external_id": None, "password": True}


def test_disabled_or_passwordless_accounts_cannot_sign_in(sqlite_workspace):
    ws = sqlite_workspace
    with ws.db.write() as s:
        auth.add_user(s, name="ana", role="annotator", password="correct horse")
        auth.add_user(s, name="bot", role="annotator")
        auth.update_user(s, "ana", active=False)
    with ws.db.read() as s:
        assert auth.authenticate(s, "ana", "correct horse") is None
        assert auth.authenticate(s, "bot", "") is None


def test_account_requests_are_checked(sqlite_workspace):
    with sqlite_workspace.db.write() as s:
        auth.add_user(s, name="ana", role="annotator")
        with pytest.raises(auth.AuthError, match="already exists"):
            auth.add_user(s, name="ana", role="admin")
        with pytest.raises(auth.AuthError, match="role must be one of"):
            auth.add_user(s, name="eve", role="root")
        with pytest.raises(auth.AuthError, match="at least 8"):
            auth.add_user(s, name="eve", role="annotator", password="short")
        with pytest.raises(auth.UserNotFound):
            auth.set_password(s, "nobody", "long enough")


def test_role_policy_refuses_annotators_every_page_but_labeling():
    assert auth.can_open("annotator", "label")
    assert auth.can_open("annotator", "conventions")
    for page in ("overview", "clips", "import_audio", "some_future_page"):
        assert not auth.can_open("annotator", page), page
        assert auth.can_open("admin", page)
    assert auth.can_open("engineer", "clips")
    assert not auth.can_open("reviewer", "import_audio")
    assert not auth.can_open(None, "label")
    assert auth.allowed("reviewer", "edit_conventions")
    assert not auth.allowed("annotator", "edit_conventions")
    assert not auth.allowed("admin", "no_such_permission")


def test_require_names_what_is_refused(sqlite_workspace):
    with sqlite_workspace.db.write() as s:
        ana = auth.add_user(s, name="ana", role="annotator")
    with pytest.raises(auth.PermissionDenied, match="annotator role may not edit conventions"):
        auth.require(ana, "edit_conventions")
    with pytest.raises(auth.PermissionDenied, match="sign in"):
        auth.require(None, "label")
    assert auth.require(ana, "label") == ana


def test_session_tokens_end_with_tampering_age_password_change_or_disabling(workspace):
    with workspace.db.write() as s:
        ana = auth.add_user(s, name="ana", role="annotator", password="correct horse")
        token = auth.issue_session_token(s, ana.id, SECRET, now=1_000_000)
    with workspace.db.read() as s:
        assert auth.user_for_token(s, token, SECRET, now=1_000_060) == ana
        assert auth.user_for_token(s, token, "another secret", now=1_000_060) is None
        assert auth.user_for_token(s, token.replace(f"{ana.id}.", "999.", 1), SECRET, now=1_000_060) is None
        assert auth.user_for_token(s, token, SECRET, now=1_000_000 + auth.SESSION_MAX_AGE_S + 1) is None
        assert auth.user_for_token(s, "garbage", SECRET) is None
        assert auth.user_for_token(s, None, SECRET) is None
    with workspace.db.write() as s:
        auth.update_user(s, "ana", role="reviewer")
    with workspace.db.read() as s:
        # A changed role applies at once: the token names the user, the role is read fresh.
        assert auth.user_for_token(s, token, SECRET, now=1_000_060).role == "reviewer"
    with workspace.db.write() as s:
        auth.set_password(s, "ana", "battery staple")
    with workspace.db.read() as s:
        assert auth.user_for_token(s, token, SECRET, now=1_000_060) is None
    with workspace.db.write() as s:
        token = auth.issue_session_token(s, ana.id, SECRET, now=1_000_000)
        auth.update_user(s, "ana", active=False)
    with workspace.db.read() as s:
        assert auth.user_for_token(s, token, SECRET, now=1_000_060) is None


def test_signing_out_ends_the_session_for_every_browser_holding_the_token(workspace):
    with workspace.db.write() as s:
        ana = auth.add_user(s, name="ana", role="annotator", password="correct horse")
        kept = auth.issue_session_token(s, ana.id, SECRET)
        token = auth.issue_session_token(s, ana.id, SECRET)
    with workspace.db.write() as s:
        assert auth.end_session(s, token, SECRET)
    # A copy of the cookie in a fresh browser is as dead as the signed-out tab; the other tab lives.
    with workspace.db.read() as s:
        assert auth.user_for_token(s, token, SECRET) is None
        assert auth.user_for_token(s, kept, SECRET) == ana
    with workspace.db.write() as s:
        assert not auth.end_session(s, token, SECRET)
        assert not auth.end_session(s, "forged.1.2.3", SECRET)


def test_reenabling_an_account_does_not_revive_its_old_sessions(workspace):
    with workspace.db.write() as s:
        ana = auth.add_user(s, name="ana", role="annotator", password="correct horse")
        token = auth.issue_session_token(s, ana.id, SECRET)
    with workspace.db.write() as s:
        auth.update_user(s, "ana", active=False)
    with workspace.db.write() as s:
        auth.update_user(s, "ana", active=True)
    with workspace.db.read() as s:
        assert auth.user_for_token(s, token, SECRET) is None
        assert auth.count_sessions(s, ana.id) == 0
    with workspace.db.write() as s:
        fresh = auth.sign_in(s, "ana", "correct horse", SECRET, client="10.0.0.1")
    with workspace.db.read() as s:
        assert auth.user_for_token(s, fresh.token, SECRET) == ana


def test_a_token_names_its_own_session_only(workspace):
    with workspace.db.write() as s:
        ana = auth.add_user(s, name="ana", role="annotator", password="correct horse")
        ben = auth.add_user(s, name="ben", role="admin", password="correct horse")
        token = auth.issue_session_token(s, ana.id, SECRET)
    # Re-signing ana's nonce for ben (as someone holding the secret but no session of ben's would)
    # finds no session of ben's.
    _, issued, nonce, _ = token.split(".")
    payload = f"{ben.id}.{issued}.{nonce}"
    import hashlib
    import hmac

    forged = f"{payload}.{hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()}"
    with workspace.db.read() as s:
        assert auth.user_for_token(s, forged, SECRET) is None


def test_guessing_is_throttled_per_account_and_client_in_the_database_and_audited(workspace):
    with workspace.db.write() as s:
        auth.add_user(s, name="ana", role="annotator", password="correct horse")
    t0 = 2_000_000
    for i in range(auth.FREE_FAILURES_PER_ACCOUNT_AND_CLIENT):
        with workspace.db.write() as s:
            result = auth.sign_in(s, "ana", f"guess {i}", SECRET, client="10.0.0.9", now=t0 + i)
        assert result.user is None
        assert result.error == "Wrong name or password."
    # Another server (its own engine on the same database) sees the same count: from the guessing
    # client, the right password is refused without being checked.
    other = type(workspace.db).from_url(workspace.db.url)
    try:
        with other.write() as s:
            refused = auth.sign_in(s, "ana", "correct horse", SECRET, client="10.0.0.9", now=t0 + 5)
    finally:
        other.dispose()
    assert refused.user is None
    assert refused.token is None
    assert refused.retry_after_s > 0
    assert "Too many failed sign-ins" in refused.error
    # Ana, at her own machine, is not locked out by someone guessing elsewhere.
    with workspace.db.write() as s:
        mine = auth.sign_in(s, "ana", "correct horse", SECRET, client="10.0.0.10", now=t0 + 6)
    assert mine.user is not None
    assert mine.user.name == "ana"
    with workspace.db.write() as s:
        later = auth.sign_in(
            s, "ana", "correct horse", SECRET, client="10.0.0.9", now=t0 + 5 + refused.retry_after_s
        )
    assert later.user is not None
    with workspace.db.read() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.entity == "sign_in_failure")).all()
        sessions = s.scalars(select(AuditEvent).where(AuditEvent.entity == "session")).all()
        s.expunge_all()
    reasons = [e.new["reason"] for e in events]
    assert reasons.count("wrong name or password") == auth.FREE_FAILURES_PER_ACCOUNT_AND_CLIENT
    assert reasons.count("throttled") == 1
    assert {e.entity_id for e in events} == {"ana"}
    assert {e.new["client"] for e in events} == {"10.0.0.9"}
    assert not any("guess" in str(e.new) or "horse" in str(e.new) for e in events)
    assert [(e.action, e.new["client"]) for e in sessions] == [
        ("create", "10.0.0.10"),
        ("create", "10.0.0.9"),
    ]


def test_wrong_passwords_from_one_address_do_not_lock_out_the_others_behind_it(workspace):
    with workspace.db.write() as s:
        auth.add_user(s, name="zoe", role="annotator", password="correct horse")
    t0 = 3_000_000
    proxy = "203.0.113.7"  # a whole team behind one address
    for i in range(20):
        with workspace.db.write() as s:
            auth.sign_in(s, f"user{i % 4}", "password1", SECRET, client=proxy, now=t0 + i)
    with workspace.db.write() as s:
        zoe = auth.sign_in(s, "zoe", "correct horse", SECRET, client=proxy, now=t0 + 20)
    assert zoe.user is not None


def test_the_ceilings_per_client_and_per_account_still_hold(workspace):
    with workspace.db.write() as s:
        auth.add_user(s, name="zoe", role="annotator", password="correct horse")
    t0 = 4_000_000
    # Earlier failures, as sign_in records them: one address trying a different name each time
    # (within the limit per account and client every time), and many addresses guessing zoe's.
    failures = [("203.0.113.7", f"user{i}") for i in range(auth.FREE_FAILURES_PER_CLIENT)]
    failures += [(f"198.51.{i // 250}.{i % 250}", "zoe") for i in range(auth.FREE_FAILURES_PER_ACCOUNT)]
    with workspace.db.write() as s:
        s.add_all(
            SignInFailure(account=account, client=client, created_at=datetime.fromtimestamp(t0 + i % 90, UTC))
            for i, (client, account) in enumerate(failures)
        )
    at = t0 + 90
    with workspace.db.write() as s:
        spraying = auth.sign_in(s, "nobody-yet", "password1", SECRET, client="203.0.113.7", now=at)
        flooded = auth.sign_in(s, "zoe", "correct horse", SECRET, client="192.0.2.1", now=at)
    assert spraying.retry_after_s > 0
    assert flooded.user is None
    assert flooded.retry_after_s > 0
    with workspace.db.write() as s:
        waited = auth.sign_in(s, "zoe", "correct horse", SECRET, client="192.0.2.1", now=at + 60)
    assert waited.user is not None


def test_trusted_header_names_an_existing_account_only(sqlite_workspace):
    with sqlite_workspace.db.write() as s:
        auth.add_user(s, name="ana", role="annotator", external_id="ana@example.org")
        auth.add_user(s, name="ben", role="reviewer")
    with sqlite_workspace.db.read() as s:
        assert auth.user_for_header(s, "ana@example.org").name == "ana"
        assert auth.user_for_header(s, "ben").role == "reviewer"
        assert auth.user_for_header(s, "mallory@example.org") is None
        assert auth.user_for_header(s, "") is None
        assert auth.user_for_header(s, None) is None


def test_demo_users_are_created_once_and_flagged_while_their_passwords_are_public(sqlite_workspace):
    ws = sqlite_workspace
    with ws.db.write() as s:
        created = auth.create_demo_users(s)
        assert auth.create_demo_users(s) == created
    assert {role for _, role, _ in created} == {"annotator", "reviewer", "engineer", "admin"}
    with ws.db.read() as s:
        for name, role, password in created:
            assert auth.authenticate(s, name, password).role == role
        assert auth.demo_accounts_open(s) == created
    with ws.db.write() as s:
        auth.set_password(s, "admin", "a private password")
    with ws.db.read() as s:
        assert [name for name, _, _ in auth.demo_accounts_open(s)] == [n for n, _, _ in created[:-1]]


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    from tests.conftest import migrate

    url = f"sqlite:///{tmp_path / 'earmark.db'}"
    migrate(url)  # a copy of a migrated file
    monkeypatch.setenv("EARMARK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("EARMARK_DATABASE_URL", url)
    return url


def _authenticate(url: str, name: str, password: str):
    from db.engine import Database

    db = Database.from_url(url)
    try:
        with db.read() as s:
            return auth.authenticate(s, name, password)
    finally:
        db.dispose()


def test_cli_user_add_prints_a_generated_password_once(cli_env, capsys):
    assert main(["user", "add", "ana", "--role", "annotator"]) == 0
    out = capsys.readouterr().out
    password = out.split("password: ", 1)[1].strip()
    assert len(password) >= auth.MIN_PASSWORD_LENGTH
    assert _authenticate(cli_env, "ana", password).role == "annotator"
    assert main(["user", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ana\tannotator\tpassword" in listing
    assert password not in listing


def test_cli_reads_passwords_from_stdin_and_changes_roles(cli_env, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert main(["user", "add", "rosa", "--role", "reviewer", "--password-stdin"]) == 0
    assert "password:" not in capsys.readouterr().out
    assert _authenticate(cli_env, "rosa", "correct horse").role == "reviewer"

    monkeypatch.setattr("sys.stdin", io.StringIO("battery staple\n"))
    assert main(["user", "passwd", "rosa", "--password-stdin"]) == 0
    assert _authenticate(cli_env, "rosa", "correct horse") is None
    assert _authenticate(cli_env, "rosa", "battery staple").name == "rosa"

    assert main(["user", "role", "rosa", "admin"]) == 0
    assert main(["user", "disable", "rosa"]) == 0
    assert _authenticate(cli_env, "rosa", "battery staple") is None
    capsys.readouterr()
    assert main(["user", "add", "rosa", "--role", "annotator", "--no-password"]) == 1
    assert "already exists" in capsys.readouterr().err
