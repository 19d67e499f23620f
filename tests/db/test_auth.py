"""Accounts, passwords, sessions, the trusted header, the role policy and ``earmark user``."""

from __future__ import annotations

import io

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from db.models import AuditEvent, User
from labeling import auth
from labeling.cli import main

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
    from db.engine import Database
    from db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'earmark.db'}"
    db = Database.from_url(url)
    upgrade(db)
    db.dispose()
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
