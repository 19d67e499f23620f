"""Who made an annotation, carried to Label Studio and back: call :func:`email_for` when writing and
:func:`identity_from_email` when reading.

Label Studio knows people by e-mail (``completed_by: {"email": …}`` on import, the user's id or
e-mail on export). Earmark gives each of its annotators a stable address in the reserved domain
``earmark.invalid`` that encodes the name exactly and is all lower-case ASCII (``ana`` →
``ana@earmark.invalid``, ``Zoë Ng`` → ``%5ao%c3%ab%20%4eg@earmark.invalid``: every character but
``a-z 0-9 _ -`` as ``%xx`` of its UTF-8, capitals included, in lower-case hex). Label Studio's sign-up
lower-cases the whole address it stores, while its import matches ``completed_by`` e-mails exactly;
an address that is lower-case already is stored as written by every way of creating the account, so
the import finds each person. The final labels get a pseudo-annotator of their own, so ground truth
never comes back as somebody's annotation. People Label Studio knew before keep their own identity: an
annotator imported as ``labelstudio:ben@example.org`` is written as ``ben@example.org`` again, and
``labelstudio-user-7`` as user id 7.

Imported identities live in their own namespace (``labelstudio:<e-mail>``, ``labelstudio-user-<id>``)
so an e-mail that happens to equal an Earmark account's name (``ben``) never credits that account.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from labeling.data.formats.base import FormatError

DOMAIN = "earmark.invalid"
#: The pseudo-annotator of Earmark's final labels (``+`` never occurs in an encoded name).
FINAL_LABEL_EMAIL = f"earmark+final-label@{DOMAIN}"
LABELSTUDIO_PREFIX = "labelstudio:"
LABELSTUDIO_USER = "labelstudio-user-{}"
_LABELSTUDIO_USER = re.compile(r"^labelstudio-user-(\d+)$")
_KEEP = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


class FinalLabel(str):
    """The identity of Earmark's final labels (a ``str`` so it can stand where a name does)."""


FINAL_LABEL = FinalLabel("(final label)")


#: Longest address Label Studio stores (its user model's e-mail field, Django's ``EmailField``).
MAX_EMAIL = 254


class IdentityError(FormatError):
    """An annotator's name cannot be carried as a Label Studio e-mail address."""


def email_for(name: str) -> str:
    """The e-mail address standing for an Earmark annotator in Label Studio: lower-case ASCII, and
    :func:`identity_from_email` gives the name back (also from an address written in capitals)."""
    local = "".join(c if c in _KEEP else "".join(f"%{b:02x}" for b in c.encode("utf-8")) for c in name)
    email = f"{local}@{DOMAIN}"
    if len(email) > MAX_EMAIL:
        raise IdentityError(
            f"the annotator name {name!r} makes an e-mail address of {len(email)} characters; Label "
            f"Studio stores at most {MAX_EMAIL}: rename the annotator in Earmark to export their work"
        )
    return email


def username_for(email: str) -> str:
    """The ``username`` Label Studio's user API requires beside the e-mail: its local part."""
    return email.rpartition("@")[0] or email


def completed_by_for(name: str) -> int | dict[str, str]:
    """``completed_by`` for an Earmark annotator: Label Studio's own id or e-mail when the person came
    from Label Studio, else the Earmark address."""
    match = _LABELSTUDIO_USER.match(name)
    if match:
        return int(match.group(1))
    if name.startswith(LABELSTUDIO_PREFIX) and len(name) > len(LABELSTUDIO_PREFIX):
        return {"email": name[len(LABELSTUDIO_PREFIX) :]}
    return {"email": email_for(name)}


def identity_from_email(email: str) -> str:
    """The Earmark annotator an e-mail from Label Studio stands for.

    An ``earmark.invalid`` address gives back the Earmark name it encodes (or :data:`FINAL_LABEL`);
    any other address is a Label Studio person, named ``labelstudio:<e-mail>``.
    """
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if at and domain.lower() == DOMAIN and local:
        if email.lower() == FINAL_LABEL_EMAIL:
            return FINAL_LABEL
        try:
            return unquote(local, errors="strict") if "%" in local else local
        except UnicodeDecodeError:
            pass  # not an address Earmark made

    return LABELSTUDIO_PREFIX + email


def labelstudio_user_id(name: str) -> int | None:
    """Label Studio's user id in a ``labelstudio-user-<id>`` name."""
    match = _LABELSTUDIO_USER.match(name)
    return int(match.group(1)) if match else None
