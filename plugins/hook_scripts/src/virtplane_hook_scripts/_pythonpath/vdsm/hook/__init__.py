"""vdsm.hook - the package of VDSM's ``hooking`` module (``from vdsm.hook import hooking``).

VDSM's own ``vdsm/hook/__init__.py`` is empty; hooks import only ``hooking`` from
here. See ``vdsm.hook.hooking``.
"""

import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)
