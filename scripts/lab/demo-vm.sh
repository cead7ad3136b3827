#!/usr/bin/env bash
# The root half of scripts/demo: boots one VM through netboot inside a network namespace and
# checks that it reached the payload's marker.
#
#   scripts/lab/demo-vm.sh NETBOOT PAYLOAD_DIR bios|uefi
#
# Creates namespace pxe-demo-<pid> with a bridge (192.0.2.1/24) and a tap for the VM, runs
# `netboot boot` in it (authoritative DHCP, --ipv6-ra), boots QEMU (TCG) on the tap with the
# serial console on stdout, and removes everything on exit. Exit 0 only when the console shows
# the marker and the end marker.
set -euo pipefail
netboot=${1:?usage: demo-vm.sh NETBOOT PAYLOAD_DIR bios|uefi}
payload=${2:?usage: demo-vm.sh NETBOOT PAYLOAD_DIR bios|uefi}
firmware=${3:?usage: demo-vm.sh NETBOOT PAYLOAD_DIR bios|uefi}
[ "$(id -u)" = 0 ] || { echo "demo-vm.sh needs root (network namespace, tap device)" >&2; exit 1; }
marker=$(cat "$payload/marker")

ns="pxe-demo-$$"
netboot_pid=
console=$(mktemp)
cleanup() {
  [ -z "$netboot_pid" ] || kill "$netboot_pid" 2>/dev/null || true
  ip netns delete "$ns" 2>/dev/null || true
  rm -f "$console"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add br0 type bridge forward_delay 0
ip -n "$ns" addr add 192.0.2.1/24 dev br0
ip -n "$ns" link set br0 up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" link set tap0 master br0
ip -n "$ns" link set tap0 up

# `ip netns exec` execs the command, so $! is netboot's own pid.
ip netns exec "$ns" "$netboot" boot "$payload/vmlinuz" "$payload/initrd.img" \
  --cmdline "console=ttyS0 demo=netboot" \
  --listen 192.0.2.1 --interface br0 --ipv6-ra \
  --dhcp authoritative --pool 192.0.2.100-192.0.2.199 &
netboot_pid=$!
sleep 1
kill -0 "$netboot_pid" 2>/dev/null || { echo "demo: netboot did not start (its error is above)" >&2; exit 1; }

qemu=(qemu-system-x86_64 -machine q35 -accel tcg -nodefaults -display none -vga none
      -no-reboot -m 512 -serial stdio
      -netdev tap,id=net0,ifname=tap0,script=no,downscript=no)
if [ "$firmware" = bios ]; then
  qemu+=(-device e1000,netdev=net0,romfile=/usr/lib/ipxe/qemu/pxe-e1000.rom)
else
  # EDK2's own PXE stack (no option ROM): DHCP, TFTP snponly.efi, then iPXE over HTTP.
  qemu+=(-device virtio-net-pci,netdev=net0,romfile= -bios /usr/share/ovmf/OVMF.fd)
fi
echo "==> booting a $firmware VM through netboot (TCG; about a minute). Console follows." >&2
ip netns exec "$ns" timeout 600 "${qemu[@]}" </dev/null | tee "$console"
if grep -q "$marker-END" "$console"; then
  echo "==> demo: the VM booted through netboot and printed $marker and its command line" >&2
else
  echo "==> demo FAILED: the VM's console never showed $marker-END (netboot's log is above)" >&2
  exit 1
fi
