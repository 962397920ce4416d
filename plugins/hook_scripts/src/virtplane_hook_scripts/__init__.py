"""Runs VDSM-style hook scripts for every hook point (plugin ``hook_scripts``).

Hook roots, in order (a script name sorts the same whatever root it is in):

1. ``$XDG_CONFIG_DIRS/virtplane/hooks`` and ``$XDG_CONFIG_HOME/virtplane/hooks``,
2. ``$XDG_DATA_DIRS/virtplane/hooks`` and ``$XDG_DATA_HOME/virtplane/hooks``,
3. ``[plugin.hook_scripts] dirs``,
4. ``[plugin.hook_scripts] vdsm_dir`` (e.g. ``/usr/libexec/vdsm/hooks``).

Each root has one folder per hook point (``before_vm_start/`` ...). Scripts run
after every in-process implementation of the same point (``trylast``): they
see the XML as the in-process plugins left it, and an in-process veto spares
forking any script. See docs/hook_scripts.md.
"""

from __future__ import annotations

import json
import keyword
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from virtplane import events
from virtplane.errors import HookVeto
from virtplane.plugins import fails_operation
from virtplane_hook_scripts._scan import scripts_of

if TYPE_CHECKING:
    from virtplane.config import Config
    from virtplane.plugins import DaemonContext
    from virtplane_hook_scripts.runner import PointResult
    from virtplane_hook_scripts.settings import HookScriptsSettings

_impl = pluggy.HookimplMarker("virtplane")(trylast=True)
#: seconds an answer of ``hook_point_active`` is reused
ACTIVE_TTL = 1.0

LAUNCH_FLAG_POINTS = frozenset({"before_vm_start", "before_device_create"})

#: VDSM configuration keys that have a virtplane setting: (VDSM section, VDSM key) ->
#: (virtplane section, key). VDSM's are whole seconds (hooks read them with getint).
VDSM_CONFIG_MAP: dict[tuple[str, str], tuple[str, str]] = {
    ("vars", "vm_sample_interval"): ("engine", "vm_interval"),
    ("vars", "host_sample_stats_interval"): ("engine", "host_interval"),
}
#: the variable ``vdsm.config`` reads virtplane's values from
VDSM_CONFIG_ENV = "VIRTPLANE_VDSM_CONFIG"


def vdsm_config(cfg: Any) -> dict[str, dict[str, Any]]:
    """``{"section": {"key": value}}`` for ``vdsm.config``: the VDSM keys of
    :data:`VDSM_CONFIG_MAP` from virtplane's configuration ``cfg`` (a
    :class:`virtplane.config.Config`, or None: nothing), seconds rounded to whole ones
    (at least 1), as VDSM's keys are integers."""
    out: dict[str, dict[str, Any]] = {}
    values = getattr(cfg, "values", None) or {}
    for (section, key), (vp_section, vp_key) in VDSM_CONFIG_MAP.items():
        value = values.get(vp_section, {}).get(vp_key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.setdefault(section, {})[key] = max(1, round(value))
    return out


def _merged_vdsm_config(ours: dict[str, dict[str, Any]], explicit: str | None) -> str | None:
    """``ours`` with the administrator's own ``$VIRTPLANE_VDSM_CONFIG`` (``explicit``)
    laid over it key by key. A value that is not a JSON object of sections is left as
    it is (None: keep it), so the script's import fails naming the variable rather than
    virtplane silently dropping it."""
    import json

    merged = {section: dict(keys) for section, keys in ours.items()}
    if explicit and explicit.strip():
        try:
            theirs = json.loads(explicit)
        except ValueError:
            return None
        if not isinstance(theirs, dict) or not all(isinstance(v, dict)
                                                   for v in theirs.values()):
            return None
        for section, keys in theirs.items():
            merged.setdefault(section, {}).update(keys)
    if not merged:
        return None
    return json.dumps(merged, sort_keys=True)


def _device_of(spec: Any, dev_xml: str) -> Any:
    """The disk or NIC of ``spec`` whose alias is exactly ``ua-<name>`` in ``dev_xml``
    (one device's XML), or None.

    Never a substring test: with oVirt's ``nic1``...``nicN`` names, ``ua-nic1`` is a
    substring of ``ua-nic10``'s XML, and a disk ``d`` of ``d1``'s, so the properties of
    one device would reach another. The element's tag picks the kind (a disk and a NIC
    may share a name). XML that does not parse names no device.
    """
    from virtplane.domxml.devices import USER_ALIAS_PREFIX
    from virtplane.errors import InvalidInput
    from virtplane_hook_scripts.runner import parse_xml

    try:
        root = parse_xml(dev_xml)
    except InvalidInput:
        return None
    alias = root.find("alias")
    name = None if alias is None else alias.get("name")
    if not name or not name.startswith(USER_ALIAS_PREFIX):
        return None
    name = name[len(USER_ALIAS_PREFIX):]
    kinds = {"disk": spec.disks, "interface": spec.nics}
    return next((d for d in kinds.get(root.tag, ()) if d.name == name), None)


def _launch_flags(path: Path, point: str) -> int:
    """The launch flags a script left in ``path`` (read like a payload: no link
    followed, bounded); a value that is not a non-negative integer is a veto
    naming the file, never a ``ValueError`` from deep inside."""
    from virtplane_hook_scripts.runner import read_back

    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        text, problem = read_back(path.name, dir_fd, limit=64)
    finally:
        os.close(dir_fd)
    if problem is None:
        text = text.strip() or "0"
        if not text.isascii() or not text.isdigit():
            problem = f"{text[:20]!r} is not a non-negative integer"
    if problem is not None:
        raise HookVeto(f"{point}: the launch flags a script left in {path} are refused: "
                       f"{problem}")
    return int(text)


def _xdg(kind: str) -> list[Path]:
    """Every XDG candidate folder for hooks, least important first (they need not exist
    yet: scripts_of checks each point folder when it runs, so a folder made later counts)."""
    from xdg import BaseDirectory

    dirs = (BaseDirectory.xdg_config_dirs if kind == "config"
            else BaseDirectory.xdg_data_dirs)  # the user's folder first
    return [Path(d) / "virtplane" / "hooks" for d in reversed(dirs)]


class HookScripts:
    """The plugin: one instance per Manager, with its settings."""

    VIRTPLANE_PLUGIN_API = ">=2.1,<3"  # configure_plugin (plugin API 2.1)
    VIRTPLANE_SETTINGS = "virtplane_hook_scripts.settings:HookScriptsSettings"

    def __init__(self, settings: HookScriptsSettings | None = None) -> None:
        self._settings = settings
        self._roots: list[Path] | None = None
        self._active: dict[str, tuple[float, bool]] = {}
        #: virtplane's configuration, from ``configure_plugin`` (which the core calls when
        #: it activates the plugin, before any hook point); None only for an instance
        #: nobody activated (``vdsm.config`` then has VDSM's defaults alone)
        self._config: Config | None = None

    @property
    def settings(self) -> HookScriptsSettings:
        """The plugin's settings (defaults when the administrator set none)."""
        if self._settings is None:
            from virtplane_hook_scripts.settings import HookScriptsSettings

            self._settings = HookScriptsSettings()
        return self._settings

    # ---------------------------------------------------------------- roots

    def roots(self) -> list[Path]:
        """The hook roots, worked out once per plugin instance (one per Manager)."""
        if self._roots is None:
            self._roots = self._find_roots()
        return self._roots

    def _find_roots(self) -> list[Path]:
        roots = _xdg("config") + _xdg("data")
        if self._settings is not None:  # defaults add no roots; skip building them
            roots += [Path(d) for d in self._settings.dirs]
            if self._settings.vdsm_dir:
                roots.append(Path(self._settings.vdsm_dir))
        return roots

    def installed(self) -> dict[str, dict[str, dict[str, str]]]:
        """``{point: {script: {"checksum": sha256}}}``, VDSM's ``caps['hooks']`` shape."""
        from virtplane_hook_scripts.runner import checksum

        out: dict[str, dict[str, dict[str, str]]] = {}
        for root in self.roots():
            if not root.is_dir():
                continue
            for folder in sorted(root.iterdir()):
                if folder.is_dir():
                    for script in scripts_of([root], folder.name):
                        out.setdefault(folder.name, {})[script.name] = {
                            "checksum": checksum(script), "path": str(script)}
        return out

    def hook_point_active(self, point: str) -> bool:
        """Whether any script is installed for ``point`` (consulted by the core)."""
        if point in ("configure_plugin", "validate_vm_spec", "extend_host_capabilities"):
            return True
        # Asked before every hook call of every operation: an answer less than a second
        # old is reused (a script installed now is seen within a second), so a VM start
        # does not stat every hook root for each of its dozen points.
        now = time.monotonic()
        cached = self._active.get(point)
        if cached is not None and now - cached[0] < ACTIVE_TTL:
            return cached[1]
        active = bool(scripts_of(self.roots(), point))
        self._active[point] = (now, active)
        return active

    def describe_hook_point(self, point: str) -> list[dict[str, str]]:
        """The scripts of a point, for ``virtplane hooks list``."""
        from virtplane_hook_scripts.runner import checksum

        return [{"script": str(p), "sha256": checksum(p)}
                for p in scripts_of(self.roots(), point)]

    # -------------------------------------------------------------- running

    def _run_dir(self) -> Path:
        """Where launch flags go: ``run_dir`` when configured, else virtplane's private
        runtime folder (:func:`runner.run_dir`), never a predictable folder under /tmp."""
        from virtplane_hook_scripts.runner import run_dir

        return run_dir(self.settings.run_dir)

    @staticmethod
    def _properties(vm: Any, kwargs: dict[str, Any]) -> dict[str, str]:
        """The VM's custom properties, and a device point's device's: handed to
        :func:`runner.run_point` apart from the environment, which checks each name
        before any script runs (a property named PATH must never become PATH)."""
        if vm is None:
            return {}
        props = {str(k): str(v) for k, v in vm.spec.custom_properties.items()}
        devxml = kwargs.get("devxml")
        if devxml is not None:
            dev = _device_of(vm.spec, devxml.xml)
            if dev is not None:
                props.update({str(k): str(v) for k, v in dev.custom_properties.items()})
        return props

    def _env(self, point: str, vm: Any, kwargs: dict[str, Any]) -> dict[str, str]:
        env = dict(os.environ)
        env["VIRTPLANE_HOOK_RUNDIR"] = str(self._run_dir())
        vdsm = _merged_vdsm_config(vdsm_config(self._config), env.get(VDSM_CONFIG_ENV))
        if vdsm is not None:
            env[VDSM_CONFIG_ENV] = vdsm
        env["VIRTPLANE_HOOK_POINT"] = point
        if vm is not None:
            env["vmId"] = vm.id
        if "from_snapshot" in kwargs:
            env["FROM_SNAPSHOT"] = str(bool(kwargs["from_snapshot"]))
        for key, value in (kwargs.get("params") or {}).items():
            env[str(key)] = str(value)
        return env

    def run(self, point: str, dry_run: bool = False, **kwargs: Any) -> PointResult | None:
        """Run the scripts of ``point`` on the call's payload (changed in place)."""
        from virtplane.payloads import XmlPayload
        from virtplane_hook_scripts.runner import payload_problem, run_point

        scripts = scripts_of(self.roots(), point)
        if not scripts:
            return None
        vm = kwargs.get("vm")
        payload = kwargs.get("devxml") or kwargs.get("domxml")
        jpayload = kwargs.get("payload")
        kind = ""  # what a script's edit must be (see runner.payload_problem)
        what = "payload"  # for the reason a refused edit gives
        if payload is not None:
            text, is_json = payload.xml, False
            kind = "xml" if isinstance(payload, XmlPayload) else ""  # vm.cfg is no XML
            what = "device XML" if kwargs.get("devxml") is not None else "domain XML"
        elif jpayload is not None:
            text, is_json, kind, what = jpayload.dumps(), True, "json", "JSON"
        elif vm is not None and vm.started_xml:
            text, is_json = vm.started_xml, False  # after_vm_destroy gets the last XML
        else:
            text, is_json = "", False
        flags_file = None
        if point in LAUNCH_FLAG_POINTS and vm is not None and payload is not None:
            from virtplane_hook_scripts.runner import launch_flags_file

            # its folder made 0700 without following a link someone planted
            flags_file = launch_flags_file(vm.id, self.settings.run_dir)
            flags_file.write_text(str(payload.launch_flags))
        try:
            result = run_point(point, scripts, text, is_json, self._env(point, vm, kwargs),
                               self.settings.timeout_seconds, dry_run=dry_run,
                               properties=self._properties(vm, kwargs),
                               check=lambda edited: payload_problem(edited, text, kind),
                               what=what)
            if flags_file is not None and payload is not None:
                payload.launch_flags = _launch_flags(flags_file, point)
        finally:
            if flags_file is not None:
                flags_file.unlink(missing_ok=True)
        if dry_run:
            return result
        if payload is not None:
            payload.xml = result.payload
        elif jpayload is not None:
            jpayload.data = json.loads(result.payload)  # checked by payload_problem
        self._report(point, result)
        return result

    def _report(self, point: str, result: PointResult) -> None:
        for res in result.scripts:
            name = Path(res.path).name
            if res.rc in (1, 2):
                events.record(f"hook script {point}/{name} failed (rc={res.rc}): {res.stderr}",
                              "error")
            elif res.rc > 2:
                events.record(f"hook script {point}/{name} returned unexpected code "
                              f"{res.rc}: {res.stderr}", "warning")
            elif res.stderr:
                events.record(f"hook script {point}/{name}: {res.stderr}", "info")
        errors = result.errors
        if errors and fails_operation(point):
            last = errors[-1]
            raise HookVeto(last.stderr or f"{Path(last.path).name} exited with {last.rc}")

    # ------------------------------------------------------------------ set-up

    @pluggy.HookimplMarker("virtplane")
    def configure_plugin(self, context: DaemonContext) -> None:
        """Remember virtplane's configuration: the values scripts read through
        ``vdsm.config`` come from it (:data:`VDSM_CONFIG_MAP`)."""
        self._config = context.config

    # ------------------------------------------------------ contribution hooks

    @pluggy.HookimplMarker("virtplane")
    def validate_vm_spec(self, spec: Any, cluster: Any) -> list[str]:
        """Custom property names must be safe environment variables (the VM's and its
        devices'), and values must match their declared regular expressions."""
        import re

        from virtplane.errors import InvalidInput
        from virtplane.names import check_property_name

        problems = []
        for owner in [spec, *spec.disks, *spec.nics]:
            for name in owner.custom_properties:
                try:
                    check_property_name(name)
                except InvalidInput as exc:
                    problems.append(str(exc))
        declared = self.settings.vm_properties
        for name, value in spec.custom_properties.items():
            pattern = declared.get(name)
            if pattern is None:
                if self.settings.strict_properties:
                    problems.append(
                        f"custom property {name!r} is not declared; declared: "
                        + (", ".join(sorted(declared)) or "none"))
                continue
            if re.fullmatch(pattern, str(value)) is None:
                problems.append(f"custom property {name}={value!r} does not match its "
                                f"declared pattern {pattern!r}")
        return problems

    @pluggy.HookimplMarker("virtplane")
    def extend_host_capabilities(self, host: Any, caps: dict[str, Any]) -> None:
        """Report installed hook scripts with their sha256, as VDSM does."""
        caps["hooks"] = {point: {name: {"checksum": info["checksum"]}
                                 for name, info in scripts.items()}
                         for point, scripts in self.installed().items()}


# ------------------------------------------------------------------ hook points


def _forwarder(point: str, argnames: tuple[str, ...]) -> Callable[..., None]:
    """The implementation of ``point``: run its scripts on the call's arguments.

    pluggy learns which arguments an implementation takes from the parameter
    names in its code, so each point needs a function whose parameters are the
    spec's own (minus deprecated ones, which would earn the plugin a warning).
    The function is compiled from the spec list, as :mod:`dataclasses` compiles
    ``__init__``: the names are the core's spec and argument names, checked to
    be identifiers, so a new spec gets its forwarder without anyone writing it.
    """
    for name in (point, *argnames):
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"hook spec {point!r}: {name!r} is not a Python identifier")
    params = "".join(f", {a}" for a in argnames)
    passed = "".join(f", {a}={a}" for a in argnames)
    namespace: dict[str, Any] = {}
    exec(f"def {point}(self{params}):\n    self.run({point!r}{passed})\n",  # noqa: S102
         namespace)
    function: Callable[..., None] = namespace[point]
    function.__module__ = __name__
    function.__qualname__ = f"HookScripts.{point}"
    function.__doc__ = f"Run the scripts installed for ``{point}``."
    return _impl(function)


def _install_forwarders() -> list[str]:
    """Give :class:`HookScripts` a forwarder for every lifecycle point of the specs."""
    import inspect

    from virtplane import hookspecs

    points = []
    for point, spec in hookspecs.specs().items():
        if not point.startswith(("before_", "after_")):
            continue  # contribution hooks (validate_*, extend_*, adjust_*) are not VDSM points
        if point in vars(HookScripts):
            points.append(point)  # written out in the class
            continue
        gone = hookspecs.DEPRECATED_ARGUMENTS.get(point, {})
        argnames = tuple(a for a in inspect.signature(spec).parameters if a not in gone)
        setattr(HookScripts, point, _forwarder(point, argnames))
        points.append(point)
    return points


#: Every hook point the plugin runs scripts for (one folder name each).
POINTS: tuple[str, ...] = tuple(_install_forwarders())


def _device_points() -> frozenset[str]:
    import inspect

    from virtplane import hookspecs

    return frozenset(p for p in POINTS
                     if "devxml" in inspect.signature(hookspecs.specs()[p]).parameters)


#: Points whose payload is one device's XML (``devxml``) rather than the domain's.
DEVICE_POINTS: frozenset[str] = _device_points()
