"""vdsm - the parts of VDSM's ``vdsm`` package that hook scripts import, provided by virtplane.

virtplane puts this package on ``PYTHONPATH`` for every hook script (next to the
``hooking`` module), because most published VDSM hooks start with
``from vdsm.hook import hooking`` or read ``vdsm.config``, ``vdsm.common.units``
or ``vdsm.osinfo``; without it such a script dies at import with exit 1, and a
``before_*`` script exiting 1 fails the operation.

Provided: ``vdsm.hook.hooking`` (the very ``hooking`` module), ``vdsm.common.units``,
``vdsm.common.constants`` (also as ``vdsm.constants``), ``vdsm.config``,
``vdsm.osinfo``. docs/hook_scripts.md has the table of names and what is left out.

The package path is extended with ``pkgutil.extend_path``: on a host that still
has VDSM installed, modules virtplane does not provide (``vdsm.network`` ...) are
found in the installed VDSM, while the ones above are virtplane's.

This code runs under the script's own interpreter (its shebang, e.g.
``/usr/bin/python3`` of an old host), so it keeps to the standard library and to
syntax Python 3.6 understands.
"""

import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)
