"""The Label page's keys: one action per key, tags keyed by their own letters where free."""

from __future__ import annotations

from labeling.annotations import RESERVED_KEYS, label_keymap


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
    assert sheet["A"] == "tag noise:car"
    assert sheet["U"] == "mark or unmark Unsure"
    assert "Backspace or Ctrl+Z" in sheet
    assert "Space" in sheet
