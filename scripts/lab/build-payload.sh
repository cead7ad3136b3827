#!/usr/bin/env bash
# Builds the firmware lab's boot payload into OUTDIR:
#   vmlinuz     Debian's stock kernel (the linux-image-*-amd64 that linux-image-amd64 depends
#               on, fetched with `apt-get download` and unpacked with `dpkg -x`; no install)
#   initrd.img  a gzip'd newc cpio of busybox-static whose /init prints the marker and
#               /proc/cmdline to /dev/ttyS0, then powers the machine off
#   marker      the marker text, for the tests
#
# Usage: scripts/lab/build-payload.sh OUTDIR
# Needs apt-get, dpkg, cpio, gzip and busybox-static (/bin/busybox, statically linked).
# testkit's `payload::boot_payload()` runs it once and caches OUTDIR under the target dir.
set -euo pipefail

out=${1:?usage: build-payload.sh OUTDIR}
marker='PXE-LAB-BOOTED'
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- kernel ---------------------------------------------------------------------------------
cd "$work"
kernel_pkg() {
  # linux-image-amd64 is a metapackage; its first dependency names the real kernel package.
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
pkg=$(kernel_pkg || true)
if [ -z "$pkg" ]; then
  # No package lists yet (a fresh machine where every package was already installed).
  apt-get update -qq
  pkg=$(kernel_pkg)
fi
[ -n "$pkg" ] || { echo "cannot resolve linux-image-amd64's kernel package" >&2; exit 1; }
echo "kernel package: $pkg" >&2
# apt-get download drops privileges to _apt when it can: let it write here.
chmod 777 "$work"
apt-get download -q "$pkg" >&2
dpkg -x "$work"/"$pkg"_*.deb "$work/kernel"
cp "$work"/kernel/boot/vmlinuz-* "$work/vmlinuz"

# --- initrd ---------------------------------------------------------------------------------
busybox=/bin/busybox
file_desc=$(head -c 4 "$busybox" | od -An -c | tr -d ' ')
[ "$file_desc" = '177ELF' ] || { echo "$busybox is not an ELF binary" >&2; exit 1; }
if ldd "$busybox" >/dev/null 2>&1; then
  echo "$busybox is dynamically linked: install busybox-static" >&2
  exit 1
fi
root="$work/initrd"
mkdir -p "$root"/{bin,dev,proc,sys}
cp "$busybox" "$root/bin/busybox"
for applet in sh cat echo mount poweroff sleep; do
  ln -s busybox "$root/bin/$applet"
done
cat > "$root/init" <<INIT
#!/bin/sh
# Prints the marker and the kernel command line on the serial console, then powers off.
export PATH=/bin
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev 2>/dev/null
{
  echo
  echo "$marker"
  echo "cmdline: \$(cat /proc/cmdline)"
  echo "$marker-END"
} > /dev/ttyS0
poweroff -f
INIT
chmod 755 "$root/init"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner 0:0 --quiet) \
  | gzip -9 > "$work/initrd.img"

# --- publish atomically -----------------------------------------------------------------------
cp "$work/vmlinuz" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
cp "$work/initrd.img" "$out/initrd.img.tmp" && mv "$out/initrd.img.tmp" "$out/initrd.img"
echo "$pkg" > "$out/kernel-package"
printf '%s\n' "$marker" > "$out/marker"
ls -l "$out" >&2
