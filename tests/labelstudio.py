"""Label Studio's own rules, for tests that cannot run Label Studio itself.

Label Studio (a Django server with its own database) is not installed in the test environment. What
Earmark relies on is pinned here from its source (HumanSignal/label-studio; behaviour observed in
Label Studio 1.23.2), each rule stated in our own words beside the file it is read from:

* **Sign-up lower-cases the whole address** (``label_studio/users/forms.py``, ``UserSignupForm``:
  ``clean_email`` and ``save`` store ``email.lower()``).
* **Accounts made otherwise keep the address as given**, but for the domain, which Django's
  ``BaseUserManager.normalize_email`` lower-cases (``label_studio/users/models.py``,
  ``UserManagerWithDeleted._create_user``); ``POST /api/users/`` saves the serializer's fields as
  sent and adds the user to the caller's organization (``label_studio/users/api.py``,
  ``UserAPI.perform_create``). The user model requires a ``username`` and keeps e-mails of at most
  254 characters (``User.username``, ``User.email``: Django's ``EmailField``).
* **Import matches ``completed_by`` e-mails exactly**: the organization's members become a dict of
  e-mail → id, and an annotation whose ``completed_by.email`` is not a key of it makes the whole
  import fail with "Unknown annotator's email" (``label_studio/tasks/serializers.py``,
  ``BaseTaskSerializerBulk._insert_valid_completed_by``).
* **Local files are served only under a Local Files storage**: ``/data/local-files/?d=PATH`` is the
  file ``LOCAL_FILES_DOCUMENT_ROOT/PATH``, served only when some storage's path is a prefix of it
  (``label_studio/core/views.py``, ``localfiles_data``).

:class:`LabelStudioRules` is a small HTTP server that answers the API calls the README's steps make
by these rules, so the documented shell commands can run end to end.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: RFC 5322 dot-atom local part (the characters Django's EmailValidator accepts before the ``@``).
_ATEXT = r"[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+"
DOT_ATOM = re.compile(rf"^{_ATEXT}(\.{_ATEXT})*$")
MAX_EMAIL = 254


def signup_stores(email: str) -> str:
    """The address a sign-up stores (users/forms.py: ``email.lower()``)."""
    return email.lower()


def manager_stores(email: str) -> str:
    """The address ``create_user`` stores (Django's normalize_email: the domain lower-cased)."""
    local, at, domain = email.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if at else email


def api_stores(email: str) -> str:
    """The address ``POST /api/users/`` stores: the field as sent."""
    return email


def import_finds(email: str, members: dict[str, int]) -> bool:
    """Whether an import resolves ``completed_by: {"email": email}`` (an exact key lookup)."""
    return email in members


class LabelStudioRules:
    """A local stand-in answering the API calls of the README's steps by the rules above.

    ``members`` maps e-mail → user id (the signed-up owner first); ``projects`` keeps each project's
    config, storages and imported tasks; ``refused`` lists what it answered 4xx and why.
    """

    def __init__(self, document_root: Path, owner: str = "Owner@Example.org") -> None:
        self.document_root = Path(document_root)
        self.token = "personal-access-token"
        self.access = "short-lived-access-token"
        self.members: dict[str, int] = {signup_stores(owner): 1}
        self.created: list[dict[str, Any]] = []
        self.projects: dict[int, dict[str, Any]] = {}
        self.refused: list[str] = []
        rules = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, answer = rules.answer(self.path, self.headers.get("Authorization"), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LabelStudioRules:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _refuse(self, status: int, why: str) -> tuple[int, dict[str, Any]]:
        self.refused.append(why)
        return status, {"detail": why}

    def answer(self, path: str, auth: str | None, body: bytes) -> tuple[int, Any]:
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return self._refuse(400, "JSON parse error")
        route = urlsplit(path).path
        if route == "/api/token/refresh":
            if not isinstance(data, dict) or data.get("refresh") != self.token:
                return self._refuse(401, "Token is invalid or expired")
            return 200, {"access": self.access}
        if auth != f"Bearer {self.access}":
            return self._refuse(401, "Authentication credentials were not provided.")
        if route == "/api/users/":
            return self._user(data)
        if route == "/api/projects/":
            if not isinstance(data, dict) or not str(data.get("label_config", "")).startswith("<View>"):
                return self._refuse(400, "label_config is not a labeling config")
            pid = len(self.projects) + 1
            self.projects[pid] = {"title": data.get("title"), "config": data["label_config"]}
            self.projects[pid] |= {"storages": [], "tasks": []}
            return 201, {"id": pid}
        if route == "/api/storages/localfiles/":
            project = self.projects.get(data.get("project") if isinstance(data, dict) else None)
            where = Path(str(data.get("path", ""))) if isinstance(data, dict) else Path()
            if project is None or not where.is_dir() or not where.is_relative_to(self.document_root):
                return self._refuse(400, "the storage path is not a folder under the document root")
            project["storages"].append(where)
            return 201, {"id": len(project["storages"])}
        match = re.fullmatch(r"/api/projects/(\d+)/import", route)
        if match and int(match.group(1)) in self.projects:
            return self._import(self.projects[int(match.group(1))], data)
        return self._refuse(404, f"no route {route}")

    def _user(self, data: Any) -> tuple[int, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("email"), str):
            return self._refuse(400, "email: This field is required.")
        if not str(data.get("username") or ""):
            return self._refuse(400, "username: This field is required.")
        email = api_stores(data["email"])
        local, at, domain = email.rpartition("@")
        if not at or not DOT_ATOM.match(local) or "." not in domain or len(email) > MAX_EMAIL:
            return self._refuse(400, f"email: Enter a valid email address. ({email})")
        if email in self.members:
            return self._refuse(400, f"email: user with this email address already exists. ({email})")
        self.members[email] = len(self.members) + 1
        self.created.append(data)
        return 201, {"id": self.members[email], "email": email}

    def _import(self, project: dict[str, Any], tasks: Any) -> tuple[int, Any]:
        if not isinstance(tasks, list):
            return self._refuse(400, "not a list")
        for task in tasks:
            for annotation in task.get("annotations", []):
                who = annotation.get("completed_by")
                if isinstance(who, dict) and not import_finds(who.get("email"), self.members):
                    return self._refuse(400, f"Unknown annotator's email {who.get('email')}")
            audio = urlsplit(task["data"]["audio"])
            if audio.path == "/data/local-files/":
                full = self.document_root / parse_qs(audio.query)["d"][0]
                if not any(full.is_relative_to(s) for s in project["storages"]) or not full.is_file():
                    return self._refuse(400, f"{full} is served by no local-files storage")
        project["tasks"] += tasks
        return 201, {"task_count": len(tasks)}

    def snapshot(self, project: int = 1) -> list[dict[str, Any]]:
        """The project's tasks as a snapshot export gives them back: each ``completed_by`` as the
        member's id and stored e-mail."""
        by_email = self.members
        out = []
        for task in self.projects[project]["tasks"]:
            task = json.loads(json.dumps(task))
            for annotation in task.get("annotations", []):
                email = annotation["completed_by"]["email"]
                annotation["completed_by"] = {"id": by_email[email], "email": email}
            out.append(task)
        return out
