"""vdsm.common.constants - the paths and names hooks read from VDSM's constants.

Hooks use these to find configuration (``SYSCONF_PATH`` for vhostmd's
``vhostmd.conf``), VDSM's run folder for their own files (``P_VDSM_RUN``) and
the hook root (``P_VDSM_HOOKS``). Values are VDSM's as packaged on EL hosts,
except ``P_VDSM_RUN``: under virtplane scripts run as the user running
virtplane, who usually cannot write ``/run/vdsm``, so it is virtplane's hook run
folder (``$VIRTPLANE_HOOK_RUNDIR``, where launch flags live too) when the runner
set one. The many ``EXT_*`` command paths VDSM has are not provided: scripts
should run commands by name.
"""

import os

SYSCONF_PATH = "/etc"
P_VDSM = "/usr/share/vdsm/"
P_VDSM_HOOKS = "/usr/libexec/vdsm/hooks/"
P_VDSM_LIB = "/var/lib/vdsm/"
P_VDSM_CONF = "/etc/vdsm/"
P_VDSM_LOG = "/var/log/vdsm"
P_VDSM_EXEC = "/usr/libexec/vdsm"
P_VDSM_RUN = (os.environ["VIRTPLANE_HOOK_RUNDIR"].rstrip("/") + "/"
              if os.environ.get("VIRTPLANE_HOOK_RUNDIR") else "/run/vdsm/")

P_LIBVIRT_VMCHANNELS = "/var/lib/libvirt/qemu/channels/"
P_LIBVIRT_NVRAM = "/var/lib/libvirt/qemu/nvram"
P_LIBVIRT_SWTPM = "/var/lib/libvirt/swtpm"

VDSM_USER = "vdsm"
VDSM_GROUP = "kvm"
QEMU_PROCESS_USER = "qemu"
QEMU_PROCESS_GROUP = "qemu"

EXT_SH = "/bin/sh"
