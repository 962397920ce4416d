"""docs/cli.md is generated from the parser (tools/gen_cli_docs.py) and up to date, so
every command, argument and option the CLI has is documented with its help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.core.cli_commands import commands

ROOT = Path(__file__).resolve().parents[2]


def test_docs_cli_md_is_generated_from_the_parser() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_cli_docs.py"), "--check"],
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr


def test_every_command_has_a_section() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    missing = [name for name, _f, _d in commands()
               if f"### `virtplane {name}`" not in doc and f"## `virtplane {name}`" not in doc]
    assert not missing, f"not in docs/cli.md: {missing}"
