"""virtplane.names.check_name: one rule for every name a user gives (pure unit tests)."""

from __future__ import annotations

import pytest

from virtplane.errors import InvalidInput
from virtplane.names import KINDS, MAX_NAME_BYTES, check_name


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["vm1", "web server 01", "d0", "debian-12.iso", "ünïcode",
                                  "a" * MAX_NAME_BYTES, "..x", "x.."])
def test_ordinary_names_pass(kind, name):
    check_name(kind, name)


@pytest.mark.parametrize("name, rule", [
    ("", "is empty"),
    ("../victim", "path separator"),
    ("a/b", "path separator"),
    ("/etc", "path separator"),
    ("a\\b", "path separator"),
    (".", "path component"),
    ("..", "path component"),
    ("nul\0byte", "control character U\\+0000"),
    ("line\nbreak", "control character U\\+000A"),
    ("\x1b[2J\x1b[Hfake prompt", "control character U\\+001B"),
    ("csi\x9b31m", "control character U\\+009B"),
    ("del\x7f", "control character U\\+007F"),
    ("rlo\u202egpj.exe", "format character U\\+202E"),
    ("sep\u2028x", "U\\+2028"),
    (" padded", "white space"),
    ("padded\t", "control character"),
    ("a" * (MAX_NAME_BYTES + 1), f"is {MAX_NAME_BYTES + 1} bytes long"),
    ("é" * (MAX_NAME_BYTES // 2 + 1), "bytes long"),
    ("0f8fad5b-d9cb-469f-a165-70867728950e", "looks like a UUID"),
    ("0F8FAD5B-D9CB-469F-A165-70867728950E", "looks like a UUID"),
    ("0f8fad5bd9cb469fa16570867728950e", "looks like a UUID"),
    ("{0f8fad5b-d9cb-469f-a165-70867728950e}", "looks like a UUID"),
    ("urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", "looks like a UUID"),
])
def test_refused_names_name_the_rule(name, rule):
    with pytest.raises(InvalidInput, match=rule) as info:
        check_name("disk", name)
    message = str(info.value)
    assert message.startswith("disk name")
    assert "not '.' or '..', and not a UUID" in message  # what is allowed
    # the message itself never carries a control character to the terminal
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in message)
    assert len(message) < 400


def test_not_text_is_refused():
    with pytest.raises(InvalidInput, match="must be text, not int"):
        check_name("VM", 5)  # type: ignore[arg-type]
