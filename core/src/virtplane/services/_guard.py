"""Hooks fail closed: VM operations are refused while a hook plugin that matters is broken.

A plugin that fails to load is isolated: everything else keeps working (see
:mod:`virtplane.plugins`). For most plugins that is right, but not for hook
plugins the administrator relies on: a typo in ``[plugin.hook_scripts]`` fails
that plugin, so every hook script is skipped, and a ``before_vm_start`` script
meant to veto a start silently stops vetoing. So the core refuses the
operations a hook could have vetoed while such a plugin is failed, naming it
and its reason, and every command warns (:func:`warn_lines`).

Which failed plugins *matter* (and block VMs):

* only plugins with the ``hooks`` kind: a failed storage, architecture or
  hypervisor driver already fails exactly the operations that need it, with its
  reason, and blocks nothing else;
* of those, a plugin the administrator **configured** (a ``[plugin.<name>]``
  table: they meant it to run), or any hook plugin on a host where **hook
  scripts are installed** in virtplane's hook folders
  (``virtplane/hooks/<point>/`` under the XDG config and data folders): on such
  a host the broken plugin may be the one meant to run or police those scripts,
  and guessing otherwise fails open.

A hook plugin that is neither configured nor on a host with scripts (say a
third-party plugin installed and never set up) is reported by ``plugins list``
and blocks nothing. An administrator who wants to go on without a broken
plugin says so: ``[plugins] disabled = ["<name>"]`` (a disabled plugin is not a
failed one), or uninstalls it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from virtplane.errors import PluginError

if TYPE_CHECKING:
    from virtplane.plugins import PluginRecord, PluginRegistry


def hook_roots() -> list[Path]:
    """virtplane's hook folders under the XDG config and data folders (which need not
    exist): where hook scripts are installed for the ``hook_scripts`` plugin."""
    home = Path.home()
    config = [os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")]
    config += (os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")
    data = [os.environ.get("XDG_DATA_HOME") or str(home / ".local" / "share")]
    data += (os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share").split(":")
    return [Path(d) / "virtplane" / "hooks" for d in config + data if os.path.isabs(d)]


def scripts_installed(roots: list[Path] | None = None) -> list[str]:
    """``point/script`` for each file in a point folder of the hook roots (sorted)."""
    found: set[str] = set()
    for root in hook_roots() if roots is None else roots:
        try:
            points = list(root.iterdir())
        except OSError:
            continue  # absent or unreadable: nothing is installed there
        for point in points:
            try:
                if point.is_dir():
                    found.update(f"{point.name}/{s.name}" for s in point.iterdir()
                                 if s.is_file())
            except OSError:
                continue
    return sorted(found)


def _matters(configured: bool, scripts: list[str]) -> str | None:
    """Why a failed hook plugin blocks VM operations, or None when it does not."""
    if configured:
        return "it is configured"
    if scripts:
        shown = ", ".join(scripts[:3]) + (f" and {len(scripts) - 3} more"
                                          if len(scripts) > 3 else "")
        return f"hook scripts are installed ({shown})"
    return None


def blocking(registry: PluginRegistry) -> list[tuple[PluginRecord, str]]:
    """Each failed hook plugin that matters (see the module docstring) with why.

    Costs nothing when no hook plugin failed (the usual case): the hook folders are
    only looked at when there is a failed hook plugin to judge.
    """
    from virtplane.plugins import FAILED

    failed = [r for r in registry.records.values()
              if r.status == FAILED and "hooks" in r.entries]
    if not failed:
        return []
    scripts = scripts_installed()
    out = []
    for rec in sorted(failed, key=lambda r: r.name):
        why = _matters(bool(registry.cfg.plugin_tables.get(rec.name)), scripts)
        if why is not None:
            out.append((rec, why))
    return out


def hook_failures(registry: PluginRegistry) -> list[str]:
    """One line per failed hook plugin that matters: its name, why it matters, its reason."""
    return [f"hook plugin {rec.name!r} ({rec.dist}) failed, and {why}: {rec.reason}"
            for rec, why in blocking(registry)]


def require_hooks(registry: PluginRegistry, what: str) -> None:
    """Refuse ``what`` (an operation a hook could veto or validate) while a hook plugin
    that matters is failed.

    :raises PluginError: naming each such plugin, its reason, and the two ways out.
    """
    found = blocking(registry)
    if found:
        lines = [f"hook plugin {rec.name!r} ({rec.dist}) failed, and {why}: {rec.reason}"
                 for rec, why in found]
        names = ", ".join(f'"{rec.name}"' for rec, _why in found)
        raise PluginError(
            f"refusing to {what}: its hooks cannot run, so a hook that would veto it "
            f"would be skipped. {'; '.join(lines)}. Fix the plugin (see `virtplane plugins "
            f"list`), or, to go on without it, disable it: [plugins] disabled = [{names}]")


def warn_lines(registry: PluginRegistry) -> list[str]:
    """The warnings every command prints (stderr) while :func:`require_hooks` refuses."""
    return [f"virtplane: warning: {line}; VM operations are refused until it is fixed or "
            "disabled" for line in hook_failures(registry)]
