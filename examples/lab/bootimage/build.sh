#!/usr/bin/env bash
# Builds tinkops's own boot image: a Debian kernel and a small initramfs
# (busybox-static, the tink-worker binary, shell-script actions) that
# brings the network up with DHCP and runs tink-worker with the process
# runtime. tinkops's iPXE script boots it from tink-server --boot-dir.
#
#   build.sh OUT_DIR TINK_WORKER_BINARY
#
# OUT_DIR receives vmlinuz-x86_64 and initramfs-x86_64 (the names the
# default iPXE script asks for). The kernel comes from Debian's
# linux-image package (apt-get download + dpkg -x), cached in
# $TINKOPS_CACHE (default ~/.cache/tinkops), outside the repository.
set -euo pipefail

out=${1:?usage: build.sh OUT_DIR TINK_WORKER_BINARY}
worker=${2:?usage: build.sh OUT_DIR TINK_WORKER_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
cache=${TINKOPS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/tinkops}

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bootimage: $tool not found (apt-get install busybox-static cpio; .ci/run installs them)" >&2; exit 1; }
  done
}
need apt-get apt-cache dpkg cpio gzip busybox

busybox=$(command -v busybox)
if ! "$busybox" --list >/dev/null 2>&1; then
  echo "bootimage: $busybox is not a working busybox" >&2; exit 1
fi
if ldd "$busybox" >/dev/null 2>&1; then
  echo "bootimage: $busybox is dynamically linked; install busybox-static" >&2; exit 1
fi
if ldd "$worker" >/dev/null 2>&1; then
  echo "bootimage: $worker is dynamically linked; build it with CGO_ENABLED=0" >&2; exit 1
fi

# The kernel: the version linux-image-amd64 depends on, extracted once.
pkg=${KERNEL_PACKAGE:-$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')}
[ -n "$pkg" ] || { echo "bootimage: apt-cache knows no linux-image-amd64 (run apt-get update)" >&2; exit 1; }
kdir=$cache/$pkg
if [ ! -f "$kdir/done" ]; then
  echo "bootimage: fetching $pkg into $kdir (once)"
  mkdir -p "$cache"
  # Filled in a directory of its own and renamed into place, so builds that
  # run at the same time never see half a cache.
  tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1 || apt-get download "$pkg")
  dpkg -x "$tmp"/"$pkg"_*.deb "$tmp/x"
  mkdir -p "$tmp/k/modules"
  cp "$tmp"/x/boot/vmlinuz-* "$tmp/k/vmlinuz"
  # virtio (QEMU's disk and NIC) and e1000 (QEMU's default NIC): enough
  # for virtual machines; production sites boot HookOS.
  for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net virtio_blk e1000; do
    f=$(find "$tmp/x/lib/modules" -name "$m.ko*" | head -1)
    [ -n "$f" ] || { echo "bootimage: module $m not in $pkg" >&2; exit 1; }
    cp "$f" "$tmp/k/modules/"
  done
  touch "$tmp/k/done"
  [ -f "$kdir/done" ] || { rm -rf "$kdir"; mv -T "$tmp/k" "$kdir" 2>/dev/null || true; }
  rm -rf "$tmp"
  trap - EXIT
  [ -f "$kdir/done" ] || { echo "bootimage: could not fill $kdir" >&2; exit 1; }
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,etc,actions,lib/modules}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$worker" "$root/bin/tink-worker"
cp "$kdir"/modules/* "$root/lib/modules/"
cp "$here/init" "$root/init"
cp "$here/udhcpc.script" "$root/etc/udhcpc.script"
cp "$here"/actions/* "$root/actions/"
chmod 0755 "$root/init" "$root/etc/udhcpc.script" "$root"/actions/* "$root/bin/tink-worker"

mkdir -p "$out"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$out/initramfs-x86_64.tmp"
mv "$out/initramfs-x86_64.tmp" "$out/initramfs-x86_64"
cp "$kdir/vmlinuz" "$out/vmlinuz-x86_64"
echo "bootimage: $out/vmlinuz-x86_64 ($pkg), $out/initramfs-x86_64 ($(du -h "$out/initramfs-x86_64" | cut -f1))"
