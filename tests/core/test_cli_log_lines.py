"""The CLI shows what the ``virtplane`` loggers warn about as its own one-line
messages: ``virtplane: warning: MESSAGE`` on stderr (``error:`` for errors).

Before: a damaged row a listing left out was logged through :mod:`logging` with no
handler configured, so Python printed the bare message (or, below WARNING, nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import small_plane
from virtplane import model


def damage(m: Any, obj_id: str) -> None:
    """Break a row's JSON around the store (as a hand edit or a broken writer would)."""
    m.store._rows(
        "UPDATE objects SET data=:d WHERE id=:id RETURNING id", {"d": '{"broken": ', "id": obj_id}
    )


def test_a_damaged_row_left_out_of_a_listing_is_one_warning_line(
    manager_factory: Callable[..., Any], tmp_path: Path, cli: Any
) -> None:
    state = tmp_path / "s.db"
    m = small_plane(manager_factory(state_path=str(state)), tmp_path / "sd")
    m.vms.create(model.VmSpec(name="good", memory_mib=256), "cl")
    bad = m.vms.create(model.VmSpec(name="bad", memory_mib=256), "cl")
    damage(m, bad.id)
    m.close()
    rc, out, err = cli("--state", str(state), "vm", "list")
    assert rc == 0, err
    assert "good" in out and "bad" not in out
    lines = [line for line in err.splitlines() if bad.id in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("virtplane: warning: ") and "left out of the list" in lines[0]
    assert "Traceback" not in err


@pytest.fixture
def loud() -> Iterator[logging.Logger]:
    log = logging.getLogger("virtplane.test_cli_log_lines")
    yield log


def _logging_command(log: logging.Logger, level: int, text: str) -> Any:
    def command(args: Any) -> int:
        log.log(level, "%s", text)
        return 0

    return command


@pytest.mark.parametrize(
    ("level", "prefix"),
    [
        (logging.WARNING, "virtplane: warning: "),
        (logging.ERROR, "virtplane: error: "),
        (logging.CRITICAL, "virtplane: error: "),
    ],
)
def test_levels_get_the_cli_prefix(
    monkeypatch: pytest.MonkeyPatch, cli: Any, loud: logging.Logger, level: int, prefix: str
) -> None:
    rc, _out, err = _run_with(monkeypatch, cli, loud, level)
    assert rc == 0, err
    assert err == f"{prefix}the thing\n"


def test_info_and_debug_are_not_shown(
    monkeypatch: pytest.MonkeyPatch, cli: Any, loud: logging.Logger
) -> None:
    for level in (logging.INFO, logging.DEBUG):
        rc, _out, err = _run_with(monkeypatch, cli, loud, level)
        assert rc == 0 and err == "", err


def test_a_logger_with_its_own_handler_keeps_its_records(
    monkeypatch: pytest.MonkeyPatch, cli: Any, loud: logging.Logger
) -> None:
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    tree = logging.getLogger("virtplane")
    own = Keep()
    tree.addHandler(own)
    try:
        rc, _out, err = _run_with(monkeypatch, cli, loud, logging.WARNING)
    finally:
        tree.removeHandler(own)
    assert rc == 0 and err == "", err
    assert seen == ["the thing"]


def test_the_handler_is_gone_after_the_command(
    monkeypatch: pytest.MonkeyPatch, cli: Any, loud: logging.Logger
) -> None:
    before = list(logging.getLogger("virtplane").handlers)
    _run_with(monkeypatch, cli, loud, logging.WARNING)
    _run_with(monkeypatch, cli, loud, logging.WARNING)
    assert logging.getLogger("virtplane").handlers == before


def _run_with(
    monkeypatch: pytest.MonkeyPatch, cli: Any, log: logging.Logger, level: int
) -> tuple[int, str, str]:
    """``virtplane demo`` whose run only logs one record at ``level``."""
    import virtplane.cli as cli_module

    monkeypatch.setattr(cli_module, "_demo", _logging_command(log, level, "the thing"))
    result: tuple[int, str, str] = cli("demo")
    return result
