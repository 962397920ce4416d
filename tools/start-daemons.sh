#!/usr/bin/env bash
# Start the daemons the integration tests and `virtplane demo --uri
# qemu:///system` need, on a machine without systemd: virtlogd, virtlockd,
# libvirtd. Idempotent. Makes QEMU run as root (so it can open disks under
# any XDG data dir) and /dev/kvm usable. Run as root after setup-system.sh.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "start-daemons: must run as root" >&2
    exit 1
fi

conf=/etc/libvirt/qemu.conf
if ! grep -q '^user = "root"' "$conf"; then
    printf '\n# virtplane tests: run QEMU as root\nuser = "root"\ngroup = "root"\n' >> "$conf"
fi
if [[ -e /dev/kvm ]]; then
    chmod 666 /dev/kvm
fi

# this host's daemons only (a second test host runs the same programs with -p PIDFILE)
running() { pgrep -f "^$1 -d\$" >/dev/null; }
running virtlogd || virtlogd -d
running virtlockd || virtlockd -d
if ! running libvirtd; then
    libvirtd -d
fi
for _ in $(seq 1 50); do
    if virsh -c qemu:///system version >/dev/null 2>&1; then
        echo "start-daemons: libvirtd is up ($(virsh -c qemu:///system version | head -1))"
        kvm=no
        [[ -r /dev/kvm && -w /dev/kvm ]] && kvm=yes
        echo "start-daemons: /dev/kvm usable: $kvm"
        exit 0
    fi
    sleep 0.2
done
echo "start-daemons: libvirtd did not answer on qemu:///system" >&2
exit 1
