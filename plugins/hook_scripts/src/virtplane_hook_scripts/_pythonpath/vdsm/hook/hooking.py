"""vdsm.hook.hooking - the same module object as ``hooking``, not a copy.

Scripts mix ``import hooking`` and ``from vdsm.hook import hooking`` (one script,
or one helper module it imports). Both must name one module: launch-flag helpers,
and any state a script keeps on the module, would otherwise split in two. So
importing this module replaces its ``sys.modules`` entry with ``hooking``; the
import system hands that entry to the importer and sets it as
``vdsm.hook.hooking``, hence ``vdsm.hook.hooking is hooking``.
"""

import sys

import hooking

sys.modules[__name__] = hooking
