#!/usr/bin/env bash
# Build a tiny Linux guest from Debian packages only: the cloud kernel and an
# initramfs with busybox whose /init loads the ACPI button modules, runs acpid
# (power button -> poweroff -f), prints a ready line on ttyS0, and sleeps; with
# tiny_spin on its kernel command line it also spins one CPU (load for balancing tests).
# Output: OUT/vmlinuz and OUT/initrd.img (default OUT=.work/tiny-guest). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.work/tiny-guest}
VERSION=2  # bump when /init changes: an older build is rebuilt
if [[ -s "$OUT/vmlinuz" && -s "$OUT/initrd.img" && "$(cat "$OUT/version" 2>/dev/null)" == "$VERSION" ]]; then
    echo "tiny guest: $OUT (already built)"
    exit 0
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
if [[ -z "$pkg" ]]; then
    apt-get update -qq
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
fi
(cd "$work" && apt-get download -qq "$pkg" >/dev/null)
dpkg -x "$work"/linux-image-*.deb "$work/k"
cp "$work"/k/boot/vmlinuz-* "$OUT/vmlinuz"

root="$work/root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,etc/acpi/PWRF,lib/modules,tmp,var/log}
cp /bin/busybox "$root/bin/busybox"
for m in drivers/acpi/button.ko drivers/input/evdev.ko; do
    src=$(find "$work"/k/lib/modules -path "*/kernel/$m*" | head -1)
    case "$src" in
        *.xz) xz -dc "$src" > "$root/lib/modules/$(basename "${src%.xz}")" ;;
        *) cp "$src" "$root/lib/modules/" ;;
    esac
done
cat > "$root/etc/acpi/PWRF/00000080" <<'EOT'
#!/bin/busybox sh
echo "tiny-guest: power button, powering off" > /dev/ttyS0
/bin/busybox poweroff -f
EOT
chmod +x "$root/etc/acpi/PWRF/00000080"
cat > "$root/init" <<'EOT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
insmod /lib/modules/evdev.ko
insmod /lib/modules/button.ko
acpid -f -c /etc/acpi -l /tmp/acpid.log &
sleep 1
echo "tiny-guest: ready" > /dev/ttyS0
if grep -q tiny_spin /proc/cmdline; then
    while :; do :; done &
    echo "tiny-guest: spinning" > /dev/ttyS0
fi
while true; do sleep 3600; done
EOT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1 > "$OUT/initrd.img")
echo "$VERSION" > "$OUT/version"
echo "tiny guest: $OUT (kernel from $pkg)"
