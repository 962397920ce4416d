"""The core's event codes and the engine's agree: a number names one event."""

from __future__ import annotations

from virtplane.events import LEVEL, Code
from virtplane_engine.codes import Code as EngineCode


def test_a_number_in_both_tables_names_the_same_event():
    engine = {int(c): c.name for c in EngineCode}
    clashes = {int(c): (c.name, engine[int(c)]) for c in Code
               if int(c) in engine and engine[int(c)] != c.name}
    assert clashes == {}


def test_the_cores_own_codes_are_in_their_range_and_have_a_level():
    for c in Code:
        assert c < 100000 or 100100 <= c < 100200, c
        assert LEVEL[c] in ("info", "warning", "error")
