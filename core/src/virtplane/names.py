"""The rules for names users give: object names and VM custom property names.

Names reach places that treat them specially: ISO names and disk aliases
become file names, names are printed on terminals and written to event logs,
objects are looked up "by name or id", and custom property names become
environment variables of hook scripts running as root. One rule per kind of
name, checked in one place, so that no caller has to remember which of these
dangers applies to it.

* :func:`check_name` - VMs, disks, snapshots, ISOs, data centers, clusters,
  storage domains, templates, hosts.
* :func:`check_property_name` - VM and device custom properties (they become
  ``NAME=value`` in a hook script's environment, VDSM's contract).

Both raise :class:`~virtplane.errors.InvalidInput` naming the rule that was
broken and what is allowed.
"""

from __future__ import annotations

import re
import unicodedata
import uuid

from virtplane.errors import InvalidInput

__all__ = [
    "DENIED_PROPERTY_NAMES",
    "DENIED_PROPERTY_PREFIXES",
    "KINDS",
    "MAX_NAME_BYTES",
    "MAX_PROPERTY_NAME",
    "RUNNER_ENV_NAMES",
    "check_name",
    "check_property_name",
]

#: The kinds of objects whose names :func:`check_name` guards (for messages and docs;
#: any kind string is accepted).
KINDS = ("VM", "disk", "snapshot", "ISO", "data center", "cluster", "storage domain",
         "template", "host")

#: Longest name, in UTF-8 bytes. oVirt allows 255 characters for most names, but a
#: name can become a file name (ISOs), and Linux limits a file name to 255 bytes; the
#: 15 bytes left over are for the affixes of virtplane's temporary files (``.NAME.tmp``).
MAX_NAME_BYTES = 240

#: Longest custom property name: far above any real one (VDSM's are single words) and
#: small enough that an environment block cannot be inflated through names.
MAX_PROPERTY_NAME = 64

_PROPERTY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Names the hook-script runner sets itself: a property with one of these names would
#: replace what the runner tells the script (where the payload is, which VM, where launch
#: flags go, where ``hooking`` is imported from, the ticket parameters).
RUNNER_ENV_NAMES = frozenset({
    "_hook_domxml", "_hook_json", "vmId", "FROM_SNAPSHOT", "PYTHONPATH",
    "VIRTPLANE_HOOK_RUNDIR", "VIRTPLANE_HOOK_POINT", "protocol", "expiry_seconds",
})

#: Variables that change which program runs or which code a program loads, how a shell
#: parses its script, or where a script writes as root. Scripts run as root and often
#: start with ``#!/usr/bin/env python3`` or ``#!/bin/sh``, so each of these hands the
#: script to whoever sets the VM's properties:
#:
#: * program and library lookup: ``PATH``, ``GCONV_PATH`` (glibc loads iconv modules
#:   from it), ``LOCPATH``, ``NLSPATH``, ``GLIBC_TUNABLES``, ``HOSTALIASES``,
#:   ``OPENSSL_CONF``/``OPENSSL_ENGINES`` (OpenSSL loads engine libraries),
#:   interpreter paths and options (``PERL5LIB``, ``PERL5OPT``, ``PERLLIB``,
#:   ``RUBYLIB``, ``RUBYOPT``, ``NODE_OPTIONS``, ``NODE_PATH``, ``JAVA_TOOL_OPTIONS``,
#:   ``_JAVA_OPTIONS``);
#: * shells: ``IFS`` (word splitting), ``ENV`` and ``BASH_ENV`` (a file sourced before the
#:   script), ``SHELL``, ``CDPATH``, ``GLOBIGNORE``, ``SHELLOPTS``, ``BASHOPTS``, ``PS4``
#:   (expanded, command substitutions included, under ``set -x``), ``PROMPT_COMMAND``;
#: * where files go: ``HOME`` (dot files read and written), ``TMPDIR``, ``TMP``,
#:   ``TEMP`` (a temporary file in a folder the setter controls is a symlink attack).
DENIED_PROPERTY_NAMES = frozenset({
    "PATH", "GCONV_PATH", "LOCPATH", "NLSPATH", "GLIBC_TUNABLES", "HOSTALIASES",
    "OPENSSL_CONF", "OPENSSL_ENGINES", "PERL5LIB", "PERL5OPT", "PERLLIB", "RUBYLIB",
    "RUBYOPT", "NODE_OPTIONS", "NODE_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
    "IFS", "ENV", "BASH_ENV", "SHELL", "CDPATH", "GLOBIGNORE", "SHELLOPTS", "BASHOPTS",
    "PS4", "PROMPT_COMMAND", "HOME", "TMPDIR", "TMP", "TEMP",
})

#: Whole families: the dynamic loader (``LD_PRELOAD``, ``LD_LIBRARY_PATH``, ``LD_AUDIT``
#: ...), Python (``PYTHONPATH``, ``PYTHONSTARTUP``, ``PYTHONHOME`` ...), virtplane's own
#: settings (``VIRTPLANE_STATE``, ``VIRTPLANE_HOOK_*``), the allocator's tunables.
DENIED_PROPERTY_PREFIXES = ("LD_", "PYTHON", "VIRTPLANE_", "MALLOC_")

_DENIED_UPPER = frozenset(n.upper() for n in DENIED_PROPERTY_NAMES | RUNNER_ENV_NAMES)


def _shown(name: str) -> str:
    """The name for an error message: escaped (no control character reaches the
    terminal) and cut short (a megabyte-long name does not become a megabyte error)."""
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "...'"


def _bad_character(name: str) -> str | None:
    """The first character no name may hold, described; None when all are fine.

    C0 and C1 controls and DEL include NUL, newlines and the ESC/CSI that start ANSI
    escape sequences (which could rewrite what a terminal shows); Unicode format
    characters (bidi overrides, zero-width joiners) and line/paragraph separators make a
    name display as something it is not; surrogates cannot be encoded at all.
    """
    for ch in name:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return f"a control character U+{code:04X}"
        category = unicodedata.category(ch)
        if category in ("Cf", "Zl", "Zp", "Cs"):
            return f"an invisible or format character U+{code:04X} ({category})"
    return None


def _looks_like_uuid(name: str) -> bool:
    """True for every spelling :class:`uuid.UUID` accepts (dashed, 32 hex digits,
    braces, ``urn:uuid:``), since objects are looked up by name *or* id."""
    try:
        uuid.UUID(name)
    except ValueError:
        return False
    return True


def check_name(kind: str, name: str) -> None:
    """Refuse a name that could act as a path, fool a terminal, or pass for an id.

    The rule: 1 to :data:`MAX_NAME_BYTES` UTF-8 bytes; no ``/`` or ``\\``; not ``.`` or
    ``..``; no control characters (C0, DEL, C1), Unicode format or separator
    characters; no leading or trailing white space; not a UUID in any spelling.

    :param kind: what is being named (``"VM"``, ``"disk"``, ... see :data:`KINDS`),
        used in the message.
    :raises InvalidInput: naming the broken rule and what is allowed.
    """
    allowed = (f"a {kind} name is 1 to {MAX_NAME_BYTES} bytes of printable text without "
               "'/' or '\\', not '.' or '..', and not a UUID")
    if not isinstance(name, str):
        raise InvalidInput(f"{kind} name must be text, not {type(name).__name__}; {allowed}")
    if not name:
        raise InvalidInput(f"{kind} name is empty; {allowed}")
    bad = _bad_character(name)
    if bad is not None:
        raise InvalidInput(f"{kind} name {_shown(name)} contains {bad}; {allowed}")
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise InvalidInput(f"{kind} name {_shown(name)} is {size} bytes long; {allowed}")
    if "/" in name or "\\" in name:
        raise InvalidInput(f"{kind} name {_shown(name)} contains a path separator; {allowed}")
    if name in (".", ".."):
        raise InvalidInput(f"{kind} name {_shown(name)} is a path component; {allowed}")
    if name != name.strip():
        raise InvalidInput(f"{kind} name {_shown(name)} starts or ends with white space; "
                           f"{allowed}")
    if _looks_like_uuid(name):
        raise InvalidInput(f"{kind} name {_shown(name)} looks like a UUID (objects are found "
                           f"by name or id, so it could name another object); {allowed}")


def check_property_name(name: str) -> None:
    """Refuse a custom property name that cannot safely become an environment variable.

    The rule: ``[A-Za-z_][A-Za-z0-9_]*``, at most :data:`MAX_PROPERTY_NAME` characters,
    not one of :data:`DENIED_PROPERTY_NAMES` or :data:`RUNNER_ENV_NAMES`, not starting
    with one of :data:`DENIED_PROPERTY_PREFIXES`. The comparison ignores case: a shell
    or interpreter that maps ``path`` onto ``PATH`` (zsh does) must not get a way round.

    :raises InvalidInput: naming the broken rule and what is allowed.
    """
    rule = (f"a custom property name matches [A-Za-z_][A-Za-z0-9_]* (at most "
            f"{MAX_PROPERTY_NAME} characters) and is not a variable that changes how hook "
            "scripts run (PATH, HOME, IFS, ENV, BASH_ENV, SHELL, TMPDIR, LD_*, PYTHON*, "
            "VIRTPLANE_*, ...) or one the hook runner sets (_hook_domxml, _hook_json, vmId, "
            "...)")
    if not isinstance(name, str) or _PROPERTY_RE.fullmatch(name) is None:
        shown = _shown(name) if isinstance(name, str) else type(name).__name__
        raise InvalidInput(f"custom property name {shown} is not an identifier; {rule}")
    if len(name) > MAX_PROPERTY_NAME:
        raise InvalidInput(f"custom property name {_shown(name)} is {len(name)} characters "
                           f"long; {rule}")
    upper = name.upper()
    if upper in _DENIED_UPPER:
        raise InvalidInput(f"custom property name {name!r} is reserved (scripts would get "
                           "it instead of the variable the system or the hook runner "
                           f"sets); {rule}")
    for prefix in DENIED_PROPERTY_PREFIXES:
        if upper.startswith(prefix):
            raise InvalidInput(f"custom property name {name!r} starts with {prefix} (a "
                               f"reserved family of variables); {rule}")
