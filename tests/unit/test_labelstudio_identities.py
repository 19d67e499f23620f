"""Earmark's annotators as Label Studio people, through Label Studio's own rules.

The rules (sign-up lower-cases the address, import matches it exactly) are pinned in
:mod:`tests.labelstudio` from Label Studio's source (``users/forms.py``, ``users/models.py``,
``tasks/serializers.py``; observed in Label Studio 1.23.2).
"""

from __future__ import annotations

import pytest

from labeling.data.formats.identities import (
    FINAL_LABEL,
    FINAL_LABEL_EMAIL,
    IdentityError,
    email_for,
    identity_from_email,
    username_for,
)
from tests.labelstudio import (
    DOT_ATOM,
    MAX_EMAIL,
    api_stores,
    import_finds,
    manager_stores,
    signup_stores,
)

#: Capitals, spaces, accents, other scripts, and names that differ only by case.
NAMES = ["Zoë Ng", "José", "Maria", "MARIA", "maria", "Cho López", "李", "a.b", "Ana-Lu_2", "o'neil"]
WAYS = {"sign-up": signup_stores, "create_user": manager_stores, "POST /api/users/": api_stores}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("way", sorted(WAYS))
def test_an_annotator_is_found_by_the_import_however_their_account_was_made(name: str, way: str) -> None:
    email = email_for(name)
    stored = WAYS[way](email)
    members = {stored: 7}

    assert import_finds(email, members)  # the tasks' completed_by matches the stored account
    assert identity_from_email(stored) == name  # and comes back as the same person


def test_addresses_are_lower_case_valid_distinct_and_reversible() -> None:
    emails = [email_for(n) for n in NAMES]
    assert len(set(emails)) == len(NAMES)  # Maria, MARIA and maria stay three people
    for name, email in zip(NAMES, emails, strict=True):
        local, _, domain = email.rpartition("@")
        assert email == email.lower()
        assert email.isascii()
        assert DOT_ATOM.match(local)
        assert domain == "earmark.invalid"
        assert len(email) <= MAX_EMAIL
        assert identity_from_email(email) == name
        assert username_for(email) == local
    assert email_for("Zoë Ng") == "%5ao%c3%ab%20%4eg@earmark.invalid"  # Z=0x5A, ë=C3 AB, N=0x4E


def test_an_address_in_capitals_written_before_still_names_its_person() -> None:
    assert identity_from_email("%5Ao%C3%AB%20%4Eg@earmark.invalid") == "Zoë Ng"
    assert identity_from_email(FINAL_LABEL_EMAIL.upper()) is FINAL_LABEL


def test_the_rule_that_broke_mixed_case_addresses() -> None:
    # what a sign-up stores of an address with capitals is another key to the exact import lookup
    assert not import_finds("%5Ao@earmark.invalid", {signup_stores("%5Ao@earmark.invalid"): 1})


def test_a_name_too_long_for_label_studio_is_refused_by_name() -> None:
    with pytest.raises(IdentityError, match="ééé"):
        email_for("é" * 60)
