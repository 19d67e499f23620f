"""The Label page's keys: one action per key, tags keyed by their own letters where free."""

from __future__ import annotations

from labeling.annotate.annotations import RESERVED_KEYS, label_keymap


def test_every_key_does_one_thing_and_streamlit_s_keys_stay_free():
    groups = {
        "noise": ["clean", "car", "babble"],
        "channel": ["wideband", "telephone", "far_field"],
        "accent": ["us", "british", "scottish", "lancastrian", "west_midlands", "caribbean", "new_york"],
        "age": ["adult", "teen"],
    }
    keys = label_keymap(["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"], groups)
    assert keys.classes == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"]
    assert (keys.skip, keys.cannot, keys.unsure) == ("s", "x", "u")
    used = [*keys.classes, keys.skip, keys.cannot, keys.unsure, *keys.tags.values()]
    assert len(used) == len(set(used))
    assert not RESERVED_KEYS & set(used)
    assert len(keys.tags) == 15  # every tag got a letter
    # A tag takes a letter of its own name when one is free: "car" cannot have "c" (Streamlit's).
    assert (keys.tags["noise:car"], keys.tags["noise:babble"], keys.tags["channel:telephone"]) == (
        "a",
        "b",
        "t",
    )
    assert keys.tags["noise:clean"] in "clean"
    assert keys.tags["accent:british"] in "british"


def test_letter_classes_keep_their_letters_and_the_actions_move_aside():
    keys = label_keymap(["s", "x", "u"], {"noise": ["us"]})
    assert keys.classes == ["s", "x", "u"]
    assert (keys.skip, keys.cannot) == ("shift+s", "shift+x")
    assert keys.unsure is None  # "u" is a class here
    assert keys.tags["noise:us"] not in {"s", "x", "u", *RESERVED_KEYS}


def test_the_sheet_lists_every_key():
    keys = label_keymap(["yes", "no"], {"noise": ["car"]})
    sheet = dict(keys.sheet(["yes", "no"]))
    assert sheet["1"] == "label as yes"
    # Keys as they are typed: a letter in lower case (Shift is optional), a combination spelled out.
    assert sheet["a"] == "tag noise:car"
    assert sheet["u"] == "mark or unmark Unsure"
    assert (sheet["s"], sheet["x"]) == ("skip this clip", "cannot label (choose the reason first)")
    assert "Backspace or Ctrl+Z" in sheet
    assert "Space" in sheet
    letters = label_keymap(["s", "x"], {})
    assert dict(letters.sheet(["s", "x"]))["Shift+S"] == "skip this clip"


def test_shift_with_a_letter_does_what_the_letter_does_unless_it_is_a_key_of_its_own():
    keys = label_keymap(["yes", "no"], {"noise": ["car"]})
    assert all(keys.shift_too(k) for k in ("a", "u", "s"))
    assert not keys.shift_too("1")  # Shift+1 types "!": digits stay as they are
    assert not keys.shift_too(None)
    letters = label_keymap(["s", "x", "u"], {})
    assert not letters.shift_too("s")  # Shift+S skips here
    assert not letters.shift_too("x")
