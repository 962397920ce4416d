"""vdsm.constants - the older home of ``vdsm.common.constants`` (same module object).

Older hooks (checkips, openstacknet) write ``from vdsm import constants``; VDSM
moved the module to ``vdsm.common`` later. Both names give one module.
"""

import sys

from vdsm.common import constants

sys.modules[__name__] = constants
