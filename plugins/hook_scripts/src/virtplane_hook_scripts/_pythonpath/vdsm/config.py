"""vdsm.config - VDSM's configuration (``from vdsm.config import config``) for hook scripts.

``config`` is a ``configparser.ConfigParser`` like VDSM's, so hooks call
``config.get/getint/getboolean/getfloat(section, key)`` as they always did.
Values, later wins:

1. VDSM's defaults for the keys published hooks read (fakevmstats, faqemu,
   vhostmd, openstacknet read ``[vars]``) and the commonly read ones of
   ``[vars]``, ``[irs]``, ``[sanlock]``, ``[addresses]``, ``[sampling]``,
   ``[performance]`` (see ``DEFAULTS``);
2. VDSM's own files when the host still has them: ``/etc/vdsm/vdsm.conf``, then
   ``*.conf`` of the ``vdsm.conf.d`` folders under ``/usr/lib/vdsm``,
   ``/run/vdsm`` and ``/etc/vdsm``, sorted by file name (VDSM's order), so a
   migrated host keeps what its administrator set (``fake_vmstats_enable`` ...);
3. virtplane's values: the JSON object ``{"section": {"key": value}}`` in
   ``$VIRTPLANE_VDSM_CONFIG``: the hook-scripts plugin sets it for each script
   from virtplane's configuration (``virtplane_hook_scripts.VDSM_CONFIG_MAP``:
   ``[engine] vm_interval`` is ``[vars] vm_sample_interval`` ...), with the
   value virtplane's own environment had, if any, laid over it key by key.

A key nobody set is VDSM's ``NoOptionError``/``NoSectionError`` (scripts may
catch those), with a message that names the key and the keys provided, instead
of VDSM's default the script expected silently missing.
"""

import configparser
import glob
import json
import os

#: section -> key -> VDSM's default (as VDSM spells it: strings)
DEFAULTS = {
    "vars": {
        "ssl": "true",
        "fake_kvm_support": "false",
        "fake_kvm_architecture": "x86_64",
        "fake_kvm_memory": "0",
        "fake_vmstats_enable": "false",
        "fake_sriov_enable": "false",
        "fake_nics": "dummy_*,veth_*",
        "hidden_nics": "w*,usb*",
        "hidden_bonds": "",
        "hidden_vlans": "",
        "core_dump_enable": "true",
        "host_mem_reserve": "256",
        "guest_ram_overhead": "65",
        "extra_mem_reserve": "65",
        "migration_max_bandwidth": "52",
        "migration_downtime": "500",
        "migration_downtime_steps": "5",
        "max_outgoing_migrations": "2",
        "max_incoming_migrations": "2",
        "sys_shutdown_timeout": "120",
        "user_shutdown_timeout": "30",
        "vm_command_timeout": "60",
        "hotunplug_timeout": "30",
        "vm_sample_interval": "15",
        "host_sample_stats_interval": "15",
        "qemu_drive_cache": "none",
        "transient_disks_repository": "/var/lib/vdsm/transient",
        "libvirt_env_variable_debug": "",
        "libvirt_env_variable_log_filters": "",
        "libvirt_env_variable_log_outputs": "",
    },
    "irs": {
        "irs_enable": "true",
        "repository": "/rhev/data-center",
        "hsm_tasks": "%(repository)s/hsm-tasks",
        "images": "/images",
        "irsd": "%(images)s/irsd",
        "nfs_mount_options": "soft,nosharecache",
        "volume_utilization_percent": "20",
        "volume_utilization_chunk_mb": "2560",
        "vol_size_sample_interval": "60",
        "udev_settle_timeout": "5",
        "scsi_rescan_maximal_timeout": "30",
        "use_volume_leases": "false",
    },
    "sanlock": {
        "io_timeout": "10",
    },
    "addresses": {
        "management_port": "54321",
        "management_ip": "::",
    },
    "sampling": {
        "enable": "true",
    },
    "performance": {
        "use_dynamic_hugepages": "false",
        "use_preallocated_hugepages": "true",
        "reserved_hugepage_count": "0",
        "reserved_hugepage_size": "none",
    },
}

#: VDSM's own configuration file and the roots of its drop-in folders
VDSM_CONF = "/etc/vdsm/vdsm.conf"
DROPIN_BASES = ("/usr/lib/", "/run/", "/etc/")
ENV_OVERRIDES = "VIRTPLANE_VDSM_CONFIG"


class VdsmConfig(configparser.ConfigParser):
    """VDSM's ConfigParser, with errors that say which keys exist."""

    def get(self, section, option, **kwargs):
        try:
            return super().get(section, option, **kwargs)
        except configparser.NoSectionError as exc:
            exc.message = (
                f"vdsm.config: no section [{section}]; sections: {', '.join(self.sections())}."
                f" virtplane provides VDSM's defaults for the keys hooks read; set others in "
                f"{VDSM_CONF} or in ${ENV_OVERRIDES}")
            exc.args = (exc.message,)
            raise
        except configparser.NoOptionError as exc:
            exc.message = (
                f"vdsm.config: no key {option!r} in section [{section}]; keys: "
                f"{', '.join(sorted(self.options(section)))}. virtplane provides VDSM's "
                f"defaults for the keys hooks read; set others in {VDSM_CONF} or in "
                f"${ENV_OVERRIDES}")
            exc.args = (exc.message,)
            raise


def _vdsm_files():
    """VDSM's configuration files in VDSM's order (missing ones are skipped by read)."""
    dropins = []
    for base in DROPIN_BASES:
        dropins.extend(glob.glob(os.path.join(base, "vdsm", "vdsm.conf.d", "*.conf")))
    dropins.sort(key=os.path.basename)
    return [VDSM_CONF] + dropins


def _overrides():
    """virtplane's values from ``$VIRTPLANE_VDSM_CONFIG``; a malformed value is an error
    naming the variable (a silent fallback would hand hooks VDSM's defaults instead)."""
    raw = os.environ.get(ENV_OVERRIDES, "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"${ENV_OVERRIDES} is not JSON ({exc}); expected "
                         '{"section": {"key": value}}') from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"${ENV_OVERRIDES} must be a JSON object of sections, each an "
                         'object of keys: {"section": {"key": value}}')
    return data


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load():
    """Build the configuration: defaults, VDSM's files, virtplane's values."""
    cfg = VdsmConfig()
    for section, keys in DEFAULTS.items():
        cfg.add_section(section)
        for key, value in keys.items():
            cfg.set(section, key, value)
    cfg.read(_vdsm_files())
    for section, keys in _overrides().items():
        if not cfg.has_section(section):
            cfg.add_section(section)
        for key, value in keys.items():
            cfg.set(section, key, _text(value))
    return cfg


config = load()
