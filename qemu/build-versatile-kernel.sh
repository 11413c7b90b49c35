#!/usr/bin/env bash
# Builds a kernel for a true ARMv5 guest: qemu's `-M versatilepb` (an ARM926EJ-S), from Debian's
# linux-source-6.1 with versatile_defconfig plus what dbtorture's /init needs (ext4, devtmpfs, the PL181 SD
# controller and the SYM53C8XX SCSI disk, cgroup v2 with the memory controller). Optional: Debian ships no
# versatile kernel; `-M raspi0` (build-guest.sh) runs an ARMv6 CPU. Output in qemu/.cache/versatile/:
# zImage and versatile-pb.dtb (with an rng-seed). Then, for example:
#   dbtorture qemu --scenario scenarios/qemu-smoke.toml --machine versatilepb \
#     --kernel qemu/.cache/versatile/zImage --dtb qemu/.cache/versatile/versatile-pb.dtb \
#     --append "console=ttyAMA0 panic=-1 rdinit=/init quiet" --qemu-arg=-m --qemu-arg=256M
# Takes ~15–30 min on 2 cores the first time; a rerun is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$PWD/qemu/.cache/versatile
log() { echo "build-versatile-kernel: $*" >&2; }
die() { echo "build-versatile-kernel: error: $*" >&2; exit 1; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

if [ -f "$OUT/zImage" ] && [ -f "$OUT/versatile-pb.dtb" ]; then
  log "ready in $OUT"
  exit 0
fi
PKGS=(linux-source-6.1 gcc-arm-linux-gnueabi bc bison flex make gcc libssl-dev xz-utils device-tree-compiler)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi
tarball=$(ls /usr/src/linux-source-6.1*.tar.xz | head -1)
[ -n "$tarball" ] || die "no /usr/src/linux-source-6.1*.tar.xz"
mkdir -p "$OUT"
SRC=$OUT/src
if [ ! -f "$SRC/Makefile" ]; then
  log "unpacking $tarball"
  rm -rf "$SRC" && mkdir -p "$SRC"
  tar -xJf "$tarball" -C "$SRC" --strip-components=1
fi
K=(make -C "$SRC" ARCH=arm CROSS_COMPILE=arm-linux-gnueabi- -j"$(nproc)")
"${K[@]}" -s versatile_defconfig
"$SRC"/scripts/config --file "$SRC/.config" \
  -e AEABI -e BLK_DEV_INITRD -e RD_GZIP -e DEVTMPFS -e EXT4_FS -e TMPFS \
  -e MMC -e MMC_BLOCK -e MMC_ARMMMCI -e PCI -e PCI_VERSATILE -e SCSI -e BLK_DEV_SD -e SCSI_SYM53C8XX_2 \
  -e CGROUPS -e MEMCG -e PROC_FS -e SYSFS -e PRINTK_TIME -d MODULES
"${K[@]}" -s olddefconfig
log "building zImage and dtbs (this takes a while)"
"${K[@]}" -s zImage dtbs
cp "$SRC/arch/arm/boot/zImage" "$OUT/zImage.tmp"
dtb=$(find "$SRC/arch/arm/boot/dts" -name versatile-pb.dtb | head -1)
[ -n "$dtb" ] || die "versatile-pb.dtb was not built"
cp "$dtb" "$OUT/versatile-pb.dtb.tmp"
# shellcheck disable=SC2046
fdtput -t bx "$OUT/versatile-pb.dtb.tmp" /chosen rng-seed $(od -An -tx1 -N64 /dev/urandom) 2>/dev/null \
  || { fdtput -c "$OUT/versatile-pb.dtb.tmp" /chosen && fdtput -t bx "$OUT/versatile-pb.dtb.tmp" /chosen rng-seed $(od -An -tx1 -N64 /dev/urandom); }
mv "$OUT/versatile-pb.dtb.tmp" "$OUT/versatile-pb.dtb"
mv "$OUT/zImage.tmp" "$OUT/zImage"
log "ready in $OUT"
