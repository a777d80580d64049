#!/bin/sh
# Builds the test guest's initramfs: busybox (static), the virtio balloon and block drivers and their
# dependencies from /lib/modules/KERNEL_VERSION, and tests/support/guest/init.
# Usage: make-initramfs.sh KERNEL_VERSION OUT.gz
set -eu
version=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
if ldd /bin/busybox >/dev/null 2>&1; then
  echo "make-initramfs.sh: /bin/busybox is dynamically linked; the guest needs busybox-static" >&2
  exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/lib" "$root/proc" "$root/sys" "$root/dev" "$root/mnt"
cp /bin/busybox "$root/bin/busybox"
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_balloon; do
  cp "/lib/modules/$version/kernel/drivers/virtio/$m.ko" "$root/lib/"
done
cp "/lib/modules/$version/kernel/drivers/block/virtio_blk.ko" "$root/lib/"
cp "$here/init" "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
