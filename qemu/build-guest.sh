#!/usr/bin/env bash
# Builds everything `dbtorture qemu` boots, from Debian packages only (see qemu/README.md):
#   qemu/.cache/guest/vmlinuz          Debian's armel Raspberry Pi kernel (runs on qemu -M raspi0)
#   qemu/.cache/guest/guest.dtb        its bcm2835-rpi-zero device tree, with an rng-seed added
#   qemu/.cache/guest/initrd.cpio.gz   /init = a static armv5te dbtorture, plus the ext4 modules
#   qemu/.cache/guest/sd-template.img  a blank 512 MiB ext4 SD image (each run gets a copy)
#   qemu/.cache/guest/guest.env        what was built (kernel version, binary checksum)
# Why a script and not the harness: it needs root for apt, a second (Debian) Rust toolchain and a foreign
# architecture, none of which belong in the test binary. Idempotent: a rerun with unchanged inputs only
# re-checks (cargo's own no-op build included) and rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/qemu/.cache
GUEST=$CACHE/guest
TARGET=armv5te-unknown-linux-gnueabi
SD_SIZE=${SD_SIZE:-512M}

log() { echo "build-guest: [${SECONDS}s] $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "run as root (apt, mknod) or install sudo"
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$CACHE" "$GUEST"

# --- 1. host packages --------------------------------------------------------------------------------------
# rustc-web + rust-web-src: Debian's rustc 1.96 and the exactly matching std source that -Zbuild-std needs.
# libdb5.3-dev:armel: Berkeley DB 5.3's static libdb-5.3.a for arm-linux-gnueabi (the guest's libdb backend).
HOST_PKGS=(rustc-web cargo-web rust-web-src gcc-arm-linux-gnueabi libc6-dev-armel-cross qemu-system-arm
  device-tree-compiler e2fsprogs cpio gzip xz-utils libdb5.3-dev:armel)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
updated=0
apt_update() {
  if [ $updated -eq 0 ]; then
    log "apt-get update"
    $SUDO apt-get update -qq || die "apt-get update failed"
    updated=1
  fi
}
# armel packages (the kernel, Berkeley DB's static library) come from Debian's armel architecture.
dpkg --print-foreign-architectures | grep -qx armel || {
  log "adding the armel architecture"
  $SUDO dpkg --add-architecture armel
  updated=0
}
missing=()
for p in "${HOST_PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt_update
  for p in "${missing[@]}"; do
    apt-cache show "$p" >/dev/null 2>&1 || die "apt has no package '$p' (needed: ${HOST_PKGS[*]}); check your apt sources (Debian 12+)"
  done
  log "installing ${missing[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi
# The std source must match the compiler exactly (a 1.95 or 1.97 compiler fails against the 1.96 source).
v_rustc=$(dpkg-query -W -f='${Version}' rustc-web)
v_src=$(dpkg-query -W -f='${Version}' rust-web-src)
[ "$v_rustc" = "$v_src" ] || die "rustc-web $v_rustc and rust-web-src $v_src differ; install both at one version: apt-get install rustc-web=$v_src"

# --- 2. the static armv5te dbtorture ------------------------------------------------------------------------
log "cross-building dbtorture for $TARGET (Debian rustc $(/usr/bin/rustc --version | cut -d' ' -f2))"
(
  export PATH=/usr/bin:/bin:/usr/sbin:/sbin RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
  unset RUSTUP_TOOLCHAIN CARGO_TARGET_DIR
  export CARGO_TARGET_ARMV5TE_UNKNOWN_LINUX_GNUEABI_LINKER=arm-linux-gnueabi-gcc
  export CC_armv5te_unknown_linux_gnueabi=arm-linux-gnueabi-gcc AR_armv5te_unknown_linux_gnueabi=arm-linux-gnueabi-ar
  export CARGO_TARGET_ARMV5TE_UNKNOWN_LINUX_GNUEABI_RUSTFLAGS="-C target-feature=+crt-static"
  # Small and quick to build: no debug info in the guest binary (the workspace's release profile has some).
  export CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=true
  # With the real Berkeley DB backend (cargo feature libdb, the default): db-backends/build.rs compiles the
  # shim with arm-linux-gnueabi-gcc against /usr/include/db.h and links libdb-5.3.a statically (+crt-static).
  /usr/bin/cargo build --release -q -Zbuild-std=std,panic_abort --target $TARGET -p dbtorture \
    --target-dir "$CACHE/target"
) || die "cross build failed (see above)"
BIN=$CACHE/target/$TARGET/release/dbtorture
[ -x "$BIN" ] || die "no binary at $BIN"
# build.rs only warns when it cannot build the shim (x86 builds go on without libdb); the guest must have it.
grep -qa "Berkeley DB 5.3" "$BIN" || die "$BIN was built without Berkeley DB 5.3 (is libdb5.3-dev:armel installed?)"
file_out=$(od -An -tx1 -j18 -N2 "$BIN" | tr -d ' ')
[ "$file_out" = "2800" ] || die "$BIN is not an ARM ELF (e_machine $file_out)"

# --- 3. Debian's armel rpi kernel, dtb and the ext4 modules ------------------------------------------------
if [ ! -f "$CACHE/kernel.deb" ]; then
  apt_update
  pkg=$(apt-cache depends linux-image-rpi:armel 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$pkg" ] || die "cannot resolve linux-image-rpi:armel (is the armel architecture in your apt sources?)"
  pkg=${pkg%:armel}
  log "downloading $pkg:armel"
  rm -rf "$CACHE/dl" && mkdir -p "$CACHE/dl" && chmod 777 "$CACHE/dl"  # apt-get download drops to _apt
  (cd "$CACHE/dl" && apt-get download -q "$pkg:armel" >/dev/null) || die "apt-get download $pkg:armel failed"
  mv "$CACHE"/dl/*.deb "$CACHE/kernel.deb"
  rm -rf "$CACHE/kernel-root"
fi
if [ ! -d "$CACHE/kernel-root" ]; then
  dpkg -x "$CACHE/kernel.deb" "$CACHE/kernel-root.tmp"
  mv "$CACHE/kernel-root.tmp" "$CACHE/kernel-root"
fi
KR=$CACHE/kernel-root
vmlinuz=$(ls "$KR"/boot/vmlinuz-* | head -1)
kver=${vmlinuz##*/vmlinuz-}
dtb_src=$(ls "$KR"/usr/lib/linux-image-"$kver"/bcm2835-rpi-zero.dtb 2>/dev/null | head -1)
[ -n "$dtb_src" ] || die "no bcm2835-rpi-zero.dtb in the kernel package"
cp -u "$vmlinuz" "$GUEST/vmlinuz"
if [ ! -f "$GUEST/guest.dtb" ] || [ "$dtb_src" -nt "$GUEST/guest.dtb" ]; then
  # qemu provides no rng-seed: without one the guest's first getrandom() blocks ~6 s.
  cp "$dtb_src" "$GUEST/guest.dtb.tmp"
  # shellcheck disable=SC2046
  fdtput -t bx "$GUEST/guest.dtb.tmp" /chosen rng-seed $(od -An -tx1 -N64 /dev/urandom)
  mv "$GUEST/guest.dtb.tmp" "$GUEST/guest.dtb"
fi

# --- 3b. the real rpm 4.18 for armel (the guest's rpm backend) ---------------------------------------------
# Debian's armel rpm, rpmdb and the shared libraries they load, with ld-linux.so.3 and rpm's macros: the
# guest's dbtorture drives them as the x86 one drives the host's (db-backends/src/rpmcli.rs). The package
# list is fixed; the closure of the binaries' DT_NEEDED is computed below and a missing library stops the build.
RPM_PKGS=(rpm rpm-common librpm9 librpmio9 libpopt0 libbz2-1.0 libc6 libcap2 libgcrypt20 libgpg-error0
  liblua5.3-0 liblzma5 libsqlite3-0 zlib1g libzstd1)
RPM_STAMP=$CACHE/rpm-debs/packages
if [ ! -f "$RPM_STAMP" ] || [ "$(cat "$RPM_STAMP")" != "${RPM_PKGS[*]}" ]; then
  apt_update
  log "downloading rpm's armel packages"
  rm -rf "$CACHE/rpm-debs" "$CACHE/rpm-root" && mkdir -p "$CACHE/rpm-debs" && chmod 777 "$CACHE/rpm-debs"
  (cd "$CACHE/rpm-debs" && apt-get download -q "${RPM_PKGS[@]/%/:armel}" >/dev/null) \
    || die "apt-get download of rpm's armel packages failed (${RPM_PKGS[*]})"
  echo "${RPM_PKGS[*]}" >"$RPM_STAMP"
fi
if [ ! -d "$CACHE/rpm-root" ]; then
  rm -rf "$CACHE/rpm-root.tmp" && mkdir -p "$CACHE/rpm-root.tmp"
  for d in "$CACHE"/rpm-debs/*.deb; do dpkg -x "$d" "$CACHE/rpm-root.tmp"; done
  mv "$CACHE/rpm-root.tmp" "$CACHE/rpm-root"
fi
RR=$CACHE/rpm-root
[ -x "$RR/usr/bin/rpm" ] && [ -x "$RR/usr/bin/rpmdb" ] && [ -f "$RR/usr/lib/rpm/macros" ] \
  || die "the armel rpm packages lack usr/bin/rpm, usr/bin/rpmdb or usr/lib/rpm/macros"
# rpm_files: the binaries, then every library they need (transitively), as paths relative to $RR.
rpm_files=(usr/bin/rpm usr/bin/rpmdb lib/ld-linux.so.3)
queue=(usr/bin/rpm usr/bin/rpmdb)
while [ ${#queue[@]} -gt 0 ]; do
  f=${queue[0]}; queue=("${queue[@]:1}")
  for lib in $(arm-linux-gnueabi-readelf -d "$RR/$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    found=""
    for dir in lib/arm-linux-gnueabi usr/lib/arm-linux-gnueabi; do
      if [ -e "$RR/$dir/$lib" ]; then found=$dir/$lib; break; fi
    done
    [ -n "$found" ] || die "$f needs $lib, which none of ${RPM_PKGS[*]} (armel) provides"
    case " ${rpm_files[*]} " in *" $found "*) ;; *) rpm_files+=("$found"); queue+=("$found") ;; esac
  done
done

# --- 4. the initramfs: /init = dbtorture, /dev/console, /lib/modules/*.ko + order, rpm ----------------------
MODS=(lib/crc16 crypto/crc32c_generic fs/mbcache fs/jbd2/jbd2 fs/ext4/ext4)
INITRD=$GUEST/initrd.cpio.gz
if [ ! -f "$INITRD" ] || [ "$BIN" -nt "$INITRD" ] || [ "$CACHE/kernel.deb" -nt "$INITRD" ] || [ "$0" -nt "$INITRD" ] \
   || [ "$RPM_STAMP" -nt "$INITRD" ]; then
  log "packing the initramfs"
  IR=$CACHE/initramfs
  rm -rf "$IR" && mkdir -p "$IR"/{dev,proc,sys,tmp,sd,lib/modules}
  cp "$BIN" "$IR/init"
  $SUDO mknod -m 600 "$IR/dev/console" c 5 1 || die "mknod /dev/console needs root"
  : >"$IR/lib/modules/order"
  for m in "${MODS[@]}"; do
    base=$KR/lib/modules/$kver/kernel/$m
    name=${m##*/}.ko
    if [ -f "$base.ko" ]; then cp "$base.ko" "$IR/lib/modules/$name"
    elif [ -f "$base.ko.xz" ]; then xz -dc "$base.ko.xz" >"$IR/lib/modules/$name"
    else die "module $m not found under $KR/lib/modules/$kver"; fi
    echo "$name" >>"$IR/lib/modules/order"
  done
  # rpm: each file at its own path (libraries dereferenced), its macros, rpmrc and popt aliases (rpm hands --initdb and --rebuilddb to rpmdb through them); /var/tmp for its scratch.
  for f in "${rpm_files[@]}"; do
    mkdir -p "$IR/$(dirname "$f")"
    cp -L "$RR/$f" "$IR/$f"
  done
  mkdir -p "$IR/usr/lib/rpm" "$IR/var/tmp" "$IR/etc"
  cp -a "$RR"/usr/lib/rpm/{macros,rpmrc,rpmpopt-*,platform} "$IR/usr/lib/rpm/"
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$IR/etc/passwd"
  printf 'root:x:0:\n' >"$IR/etc/group"
  (cd "$IR" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -6) >"$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"
fi

# --- 5. the SD template: ext4, inode tables initialised now (not by the slow guest) -----------------------
if [ ! -f "$GUEST/sd-template.img" ]; then
  log "creating the $SD_SIZE SD template"
  rm -f "$GUEST/sd.tmp"
  truncate -s "$SD_SIZE" "$GUEST/sd.tmp"
  mkfs.ext4 -q -F -L dbtorture -E lazy_itable_init=0,lazy_journal_init=0 "$GUEST/sd.tmp"
  mv "$GUEST/sd.tmp" "$GUEST/sd-template.img"
fi

cat >"$GUEST/guest.env.tmp" <<EOF
kernel=$kver
kernel_deb=$(dpkg-deb -f "$CACHE/kernel.deb" Package)_$(dpkg-deb -f "$CACHE/kernel.deb" Version)
machine=raspi0
rustc=$(/usr/bin/rustc --version)
binary_sha256=$(sha256sum "$BIN" | cut -d' ' -f1)
libdb=$(dpkg-query -W -f='${Version}' libdb5.3-dev:armel)
rpm=$(dpkg-deb -f "$(ls "$CACHE"/rpm-debs/rpm_*.deb)" Version)
EOF
mv "$GUEST/guest.env.tmp" "$GUEST/guest.env"
log "ready in $GUEST (kernel $kver, initrd $(du -h "$INITRD" | cut -f1))"
