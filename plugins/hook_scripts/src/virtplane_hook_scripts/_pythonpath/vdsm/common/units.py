"""vdsm.common.units - size constants, as in VDSM (binary units, integers).

Hooks use them for disk and memory arithmetic (``from vdsm.common.units import
MiB, GiB``), so they are plain ``int`` powers of 1024, exactly VDSM's values.
"""

KiB = 1024
MiB = 1024 ** 2
GiB = 1024 ** 3
TiB = 1024 ** 4
PiB = 1024 ** 5
