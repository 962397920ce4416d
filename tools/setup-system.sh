#!/usr/bin/env bash
# Install the Debian packages virtplane needs (build deps of libvirt-python,
# libvirt + QEMU for the integration tests, and what the tiny test guest is
# built from). Idempotent; run as root. Set VIRTPLANE_SKIP_APT=1 to skip.
set -euo pipefail

if [[ "${VIRTPLANE_SKIP_APT:-}" == "1" ]]; then
    echo "setup-system: VIRTPLANE_SKIP_APT=1, not installing system packages"
    exit 0
fi

PKGS=(
    # build libvirt-python
    pkg-config libvirt-dev gcc python3-dev
    # libvirt + QEMU (integration tests, demo on qemu:///system)
    libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
    qemu-system-x86 qemu-system-ppc qemu-utils qemu-block-extra
    # tiny test guest
    busybox-static cpio
    # GlusterFS storage domains (single-node volume for the tests)
    glusterfs-server glusterfs-client libvirt-daemon-driver-storage-gluster
    # the OVM3 tests make a TLS certificate for the HTTPS agent
    openssl
    graphviz
    # the virtinst peer of the render benchmark (tests/perf/virtinst_peer.py)
    virtinst
    # the PostgreSQL state backend's tests (tools/start-postgres.sh)
    postgresql
    # the oVirt SDK (tests/api) builds from source: libxml2 headers; pycurl where it has no wheel
    libxml2-dev libcurl4-openssl-dev libssl-dev
    # users from a directory: a throw-away OpenLDAP for tests/authz (tools/start-slapd.sh)
    slapd ldap-utils
    # the ssh fence agent's contract test (soft fencing over ssh)
    openssh-client
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "setup-system: all system packages present"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "setup-system: need root to install: ${missing[*]}" >&2
    exit 1
fi

echo "setup-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup-system: done"
