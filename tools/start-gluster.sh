#!/usr/bin/env bash
# Start glusterd (no systemd here) and a single-brick test volume on this host,
# set up the way QEMU needs it for libgfapi disks. Idempotent. Run as root,
# after setup-system.sh and start-daemons.sh.
#   tools/start-gluster.sh [VOLUME] [BRICK_DIR]   (default vptest, /srv/vp-gluster/<VOLUME>)
set -euo pipefail
VOL=${1:-vptest}
BRICK=${2:-/srv/vp-gluster/$VOL}
HOST=$(hostname)

if ! pgrep -x glusterd >/dev/null; then
    glusterd --log-file=/var/log/glusterfs/glusterd.log
fi
for _ in $(seq 1 50); do
    gluster --mode=script peer status >/dev/null 2>&1 && break
    sleep 0.2
done

if ! gluster --mode=script volume info "$VOL" >/dev/null 2>&1; then
    mkdir -p "$BRICK"
    # a single brick on the same host needs 'force'
    gluster --mode=script volume create "$VOL" "$HOST:$BRICK" force >/dev/null
fi
if ! gluster --mode=script volume info "$VOL" | grep -q "Status: Started"; then
    gluster --mode=script volume start "$VOL" >/dev/null
fi
# QEMU connects through libgfapi from unprivileged ports; files must belong to QEMU's user
qemu_user=$(sed -n 's/^user = "\(.*\)"/\1/p' /etc/libvirt/qemu.conf | tail -1)
qemu_user=${qemu_user:-libvirt-qemu}
gluster --mode=script volume set "$VOL" server.allow-insecure on >/dev/null
gluster --mode=script volume set "$VOL" storage.owner-uid "$(id -u "$qemu_user")" >/dev/null
gluster --mode=script volume set "$VOL" storage.owner-gid "$(id -g "$qemu_user")" >/dev/null
echo "start-gluster: volume $VOL on $HOST:$BRICK is up"
