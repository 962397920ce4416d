"""hooking - helpers for VDSM-style hook scripts, provided by virtplane.

virtplane puts this module on ``PYTHONPATH`` for every hook script, so scripts
written for VDSM (``import hooking``) run unchanged. Behaviour follows VDSM's
``vdsm.hook.hooking``:

* ``read_domxml()`` / ``write_domxml(dom)``: the (domain or device) XML in the
  file named by ``$_hook_domxml``, as a ``xml.dom.minidom`` document;
* ``read_json()`` / ``write_json(data)``: the JSON in ``$_hook_json``;
* ``log(msg)``: a line on stderr (virtplane puts it in the VM's event log);
* ``exit_hook(msg, return_code=2)``: print ``msg`` on stderr and exit;
* ``execCmd(argv, sudo=False, cwd=None, data=None, raw=False, env=None)``:
  run a command, return ``(rc, out, err)``; out/err are lists of byte lines,
  or bytes with ``raw=True``;
* ``tobool(value)``: ``True`` for True, ``"true"`` (any case) or a non-zero
  integer (also as a string), else ``False``;
* ``load_vm_launch_flags_from_file(vm_id)`` /
  ``dump_vm_launch_flags_to_file(vm_id, flags)``: libvirt start flags of a VM
  (``before_vm_start`` and ``before_device_create`` may change them).

Return codes: 0 success; 1 failed, the other scripts still run (the operation
of a ``before_*`` point still fails); 2 failed, no further scripts run; more
than 2 is reserved (logged, the other scripts run).
"""

import json
import os
import subprocess
import sys
from xml.dom import minidom


def tobool(s):
    """Convert the argument into a boolean, as VDSM does."""
    if s is None:
        return False
    if isinstance(s, bool):
        return s
    if isinstance(s, str) and s.lower() == "true":
        return True
    try:
        return bool(int(s))
    except (TypeError, ValueError):
        return False


def read_domxml():
    with open(os.environ["_hook_domxml"], "rb") as f:
        return minidom.parseString(f.read().decode("utf-8"))


def write_domxml(domxml):
    with open(os.environ["_hook_domxml"], "wb") as f:
        f.write(domxml.toxml(encoding="utf-8"))


def read_json():
    with open(os.environ["_hook_json"]) as f:
        return json.loads(f.read())


def write_json(data):
    with open(os.environ["_hook_json"], "w") as f:
        f.write(json.dumps(data))


def log(message):
    sys.stderr.write(message + "\n")


def exit_hook(message, return_code=2):
    """Exit the hook with ``message`` on stderr and ``return_code`` (default 2)."""
    sys.stderr.write(message + "\n")
    sys.exit(return_code)


def execCmd(command, sudo=False, cwd=None, data=None, raw=False, printable=None, env=None,
            **_ignored):
    """Run ``command``; return ``(rc, out, err)`` like VDSM's execCmd."""
    command = list(command)
    if sudo and os.geteuid() != 0:
        command = ["sudo", "-n"] + command
    p = subprocess.Popen(command, close_fds=True, cwd=cwd, env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(data)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = out or b""
    err = err or b""
    if not raw:
        out = out.splitlines(False)
        err = err.splitlines(False)
    return p.returncode, out, err


def _launch_flags_path(vm_id):
    return os.path.join(os.environ["VIRTPLANE_HOOK_RUNDIR"], vm_id, "launchflags")


def load_vm_launch_flags_from_file(vm_id):
    with open(_launch_flags_path(vm_id)) as f:
        return int(f.read().strip() or 0)


def dump_vm_launch_flags_to_file(vm_id, flags):
    path = _launch_flags_path(vm_id)
    with open(path, "w") as f:
        f.write(str(flags))
