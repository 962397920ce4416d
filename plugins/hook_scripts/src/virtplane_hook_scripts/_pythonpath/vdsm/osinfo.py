"""vdsm.osinfo - what hook scripts ask VDSM about the host OS.

Same names and return shapes as VDSM's module, read from the same places
(``/proc/cmdline``, ``/sys/module/<kvm module>/parameters/nested``,
``/etc/os-release``, ``/sys/kernel/kexec_crash_loaded``, ``/sys/fs/selinux``):

* ``nested_virtualization()`` -> ``NestedVirtualization(enabled, kvm_module)``
  (the nestedvt hook), ``(False, None)`` on POWER, ``kvm`` on s390x,
  ``kvm_intel``/``kvm_amd`` elsewhere;
* ``kernel_args(path)``, ``kernel_args_dict(path)``;
* ``runtime_kernel_flags()`` -> ``KernelFlags(version={version, release}, realtime)``;
* ``version()`` -> ``{release, version, name, pretty_name}``;
* ``kdump_status()`` with ``KdumpStatus``, ``selinux_status()``, ``boot_uuid()``,
  ``OSName``.

Not provided, with the reason: ``package_versions()`` (VDSM asks rpm/apt for its
own packages; a partial answer would mislead) and ``kernel_features()`` (asks
VDSM's privileged supervdsm daemon). Results are cached per script run, as VDSM
memoizes them per process.
"""

import errno
import functools
import glob
import os
import subprocess
import sys
from collections import namedtuple

KernelFlags = namedtuple("KernelFlags", "version, realtime")
NestedVirtualization = namedtuple("NestedVirtualization", "enabled, kvm_module")

_cache = functools.lru_cache(maxsize=None)


class OSName:
    UNKNOWN = "unknown"
    OVIRT = "oVirt Node"
    RHEL = "RHEL"
    FEDORA = "Fedora"
    RHEVH = "RHEV Hypervisor"
    DEBIAN = "Debian"


class KdumpStatus:
    UNKNOWN = -1
    DISABLED = 0
    ENABLED = 1


def _debug(message):
    """VDSM logs these at debug level; a hook's stderr goes to the VM's event log, so
    only say them when asked (``VIRTPLANE_HOOK_DEBUG`` set)."""
    if os.environ.get("VIRTPLANE_HOOK_DEBUG"):
        sys.stderr.write("vdsm.osinfo: " + message + "\n")


@_cache
def nested_virtualization():
    """Whether the loaded KVM module lets guests run their own guests."""
    machine = os.uname().machine
    if machine.startswith("ppc"):
        return NestedVirtualization(False, None)
    modules = ("kvm",) if machine.startswith("s390") else ("kvm_intel", "kvm_amd")
    for module in modules:
        path = "/sys/module/" + module + "/parameters/nested"
        try:
            with open(path) as f:
                if f.readline().strip() in ("Y", "1"):
                    return NestedVirtualization(True, module)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            _debug(module + " nested virtualization not detected")
    return NestedVirtualization(False, None)


@_cache
def kernel_args(path="/proc/cmdline"):
    """The kernel command line, as one string."""
    with open(path) as f:
        return f.readline().strip()


@_cache
def kernel_args_dict(path="/proc/cmdline"):
    """The ``key=value`` words of the kernel command line (bare words are left out)."""
    out = {}
    for word in kernel_args(path).split(" "):
        key, sep, value = word.partition("=")
        if sep and "=" not in value:
            out[key] = value
    return out


@_cache
def runtime_kernel_flags():
    """The running kernel's version and release (``uname -r`` split at the first '-'),
    and whether it is a real-time kernel (``RT`` in ``uname -v``)."""
    uname = os.uname()
    ver, sep, rel = uname.release.partition("-")
    if not sep:
        ver, rel = "0", "0"
    return KernelFlags({"version": ver, "release": rel}, "RT" in uname.version)


def _parse_release_file(path):
    data = {}
    try:
        with open(path) as f:
            for line in f:
                key, sep, value = line.partition("=")
                if sep:
                    data[key.strip()] = value.strip()
    except OSError as exc:
        _debug("cannot read " + path + ": " + str(exc))
    return data


@_cache
def _release_name():
    if os.path.exists("/etc/rhev-hypervisor-release"):
        return OSName.RHEVH
    if glob.glob("/etc/ovirt-node-*-release"):
        return OSName.OVIRT
    if os.path.exists("/etc/fedora-release"):
        return OSName.FEDORA
    if os.path.exists("/etc/redhat-release"):
        return OSName.RHEL
    if os.path.exists("/etc/debian_version"):
        return OSName.DEBIAN
    return OSName.UNKNOWN


@_cache
def version():
    """``{release, version, name, pretty_name}`` of the host OS.

    VDSM asks rpm for the release package on RHEL-like hosts; here ``version`` is
    ``VERSION_ID`` of ``/etc/os-release`` there (``/etc/debian_version`` on Debian,
    ``/etc/default/version`` on oVirt Node) and ``release`` is empty when rpm would
    have been needed.
    """
    os_release = _parse_release_file("/etc/os-release")
    name = _release_name()
    ver = release = ""
    if name in (OSName.RHEVH, OSName.OVIRT):
        node = _parse_release_file("/etc/default/version")
        ver, release = node.get("VERSION", ""), node.get("RELEASE", "")
    elif name == OSName.DEBIAN:
        try:
            with open("/etc/debian_version") as f:
                ver = f.readline().strip()
        except OSError as exc:
            _debug("cannot read /etc/debian_version: " + str(exc))
    else:
        ver = os_release.get("VERSION_ID", "").strip('"')
    return {"release": release, "version": ver, "name": name,
            "pretty_name": os_release.get("PRETTY_NAME", "").strip('"')}


def kdump_status():
    """``KdumpStatus``: ENABLED only when a crash kernel is loaded *and* fence_kdump is
    configured, as VDSM reports it to the engine."""
    try:
        with open("/sys/kernel/kexec_crash_loaded") as f:
            status = int(f.read().strip())
    except (OSError, ValueError):
        return KdumpStatus.UNKNOWN
    if status != KdumpStatus.ENABLED:
        return status
    try:
        with open("/etc/kdump.conf") as f:
            if any(line.startswith("fence_kdump_nodes") for line in f):
                return KdumpStatus.ENABLED
    except OSError:
        return KdumpStatus.UNKNOWN
    return KdumpStatus.DISABLED


def selinux_status():
    """``{"mode": "1"|"0"|"-1"}``: enforcing, permissive, disabled (VDSM's strings)."""
    try:
        with open("/sys/fs/selinux/enforce") as f:
            mode = int(f.read().strip())
    except (OSError, ValueError):
        mode = -1
    return {"mode": str(mode)}


@_cache
def boot_uuid():
    """UUID of the file system holding ``/boot`` (``findmnt``; raises if it fails)."""
    out = subprocess.check_output(
        ["findmnt", "--output=UUID", "--noheadings", "--target=/boot"])
    return out.decode("utf-8").strip()
