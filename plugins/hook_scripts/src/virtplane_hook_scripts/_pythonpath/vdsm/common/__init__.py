"""vdsm.common - the modules of VDSM's ``vdsm.common`` that hook scripts import.

Provided: ``units``, ``constants``. Others (``cmdutils``, ``commands``,
``cpuarch``, ``fileutils``, ``libvirtconnection`` ...) are VDSM's internals; they
come from an installed VDSM when there is one (the path is extended), else their
import fails with ``ModuleNotFoundError`` naming the module.
"""

import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)
