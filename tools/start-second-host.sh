#!/usr/bin/env bash
# Start a second libvirt "host" on this machine for migration tests: libvirtd,
# virtlogd and virtlockd in their own mount namespace with their own config,
# run, state and log folders and their own host UUID. Idempotent.
#   start: tools/start-second-host.sh [ROOT]      (default ROOT=/srv/vp-h2)
#   stop:  tools/start-second-host.sh --stop [ROOT]
# From outside, the host is qemu+unix:///system?socket=ROOT/run/libvirt-sock
set -euo pipefail

stop=0
if [[ "${1:-}" == "--stop" ]]; then stop=1; shift; fi
ROOT=${1:-/srv/vp-h2}
SOCK="$ROOT/run/libvirt-sock"

stop_all() {
    local d pid
    for d in libvirtd virtlockd virtlogd; do
        if [[ -f "$ROOT/run/$d.pid" ]]; then
            pid=$(cat "$ROOT/run/$d.pid" 2>/dev/null) || continue  # it just exited
            if kill "$pid" 2>/dev/null; then
                for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            fi
            rm -f "$ROOT/run/$d.pid"
        fi
    done
    # a daemon that is still shutting down may already have removed its pid file
    # (and would remove the new daemon's socket on its way out): wait for it too
    local pattern="-p $ROOT/run/(libvirtd|virtlogd|virtlockd)[.]pid"
    for _ in $(seq 1 100); do
        pgrep -f -- "$pattern" >/dev/null || return 0
        pkill -f -- "$pattern" 2>/dev/null || true
        sleep 0.1
    done
    echo "start-second-host: old daemons of $ROOT do not exit" >&2
    return 1
}

if [[ $stop -eq 1 ]]; then
    stop_all
    echo "second host stopped"
    exit 0
fi

if [[ -S "$SOCK" ]] && virsh -c "qemu+unix:///system?socket=$SOCK" version >/dev/null 2>&1; then
    echo "second host already up: qemu+unix:///system?socket=$SOCK"
    exit 0
fi

mkdir -p "$ROOT"/{etc,run,lib,log,cache}
if [[ ! -f "$ROOT/etc/libvirtd.conf" ]]; then
    cp -a /etc/libvirt/. "$ROOT/etc/"
    echo "host_uuid = \"$(cat /proc/sys/kernel/random/uuid)\"" >> "$ROOT/etc/libvirtd.conf"
fi
stop_all  # leftovers of an instance whose libvirtd died

# setsid + no inherited stdio: the daemons must not belong to (or write into) the caller
setsid unshare -m --propagation private bash -c "
    set -e
    mount --bind '$ROOT/etc' /etc/libvirt
    mount --bind '$ROOT/run' /run/libvirt
    mount --bind '$ROOT/lib' /var/lib/libvirt
    mount --bind '$ROOT/log' /var/log/libvirt
    mkdir -p /var/cache/libvirt
    mount --bind '$ROOT/cache' /var/cache/libvirt
    virtlogd -d -p '$ROOT/run/virtlogd.pid'
    virtlockd -d -p '$ROOT/run/virtlockd.pid'
    LIBVIRT_LOG_OUTPUTS='2:file:/var/log/libvirt/libvirtd.log' libvirtd -d -p '$ROOT/run/libvirtd.pid'
" </dev/null >>"$ROOT/log/start.log" 2>&1
for _ in $(seq 1 50); do
    if virsh -c "qemu+unix:///system?socket=$SOCK" version >/dev/null 2>&1; then
        echo "second host up: qemu+unix:///system?socket=$SOCK"
        exit 0
    fi
    sleep 0.2
done
echo "second host did not come up (socket $SOCK)" >&2
exit 1
