#!/usr/bin/env bash
# bench/slot_install.sh: A/B slot install (issue 3), side by side in one run. A root filesystem
# image (ext4 made with mke2fs -d from files of this machine, IMAGE_MIB MiB, default 256) is
# compressed with zstd -3 and -19 and installed into a file-backed slot by
#   plain   zstd -dc image.zst | tee >(sha256sum) | dd of=slot bs=1M conv=fsync,notrunc
#           (the physical reference; notrunc keeps a file slot's size, as a partition's)
#   eddy    build/bench/slot_install_bench: the slot writer as the update worker uses it
#   rauc    `rauc install` of a signed bundle (plain format, the image in a squashfs made with
#           -comp zstd at the same level) into a raw slot, through `rauc service` on a private
#           D-Bus system bus, with a custom bootloader backend on a state folder
#   swupdate `swupdate -i` of a signed .swu with the .zst image (raw handler, compressed="zstd")
# Each tool runs RUNS times (default 3), interleaved; the table gives the median wall time and
# the median peak resident memory (GNU time's maximum RSS; RAUC: the service's VmHWM, the
# process that does the install). After every run the slot must hold the image (cmp).
# Before every run the slot is overwritten with zeros and synced (not timed), so every tool
# writes over allocated blocks.
#
# Needs (Debian bookworm; benchmark only, so not in scripts/install-deps):
#   apt-get install -y rauc swupdate squashfs-tools cpio dbus zstd openssl e2fsprogs time
# and the bench executable: ninja -C build slot_install_bench
# Usage: bench/slot_install.sh [WORKDIR]   (default: a new folder under /var/tmp, removed after)
#   env: IMAGE_MIB, RUNS, LEVELS ("3 19"), TOOLS ("plain eddy rauc swupdate"), EDDY_BUILD (build)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${EDDY_BUILD:-$here/build}
mib=${IMAGE_MIB:-256}
runs=${RUNS:-3}
levels=${LEVELS:-"3 19"}
tools=${TOOLS:-"plain eddy rauc swupdate"}
bench_exe=$build/bench/slot_install_bench

for tool in zstd rauc swupdate mksquashfs cpio dbus-daemon openssl mke2fs sha256sum; do
  command -v "$tool" >/dev/null || {
    echo "bench/slot_install.sh: $tool is missing: apt-get install -y rauc swupdate squashfs-tools cpio dbus zstd openssl e2fsprogs time" >&2
    exit 2
  }
done
[ -x /usr/bin/time ] || { echo "bench/slot_install.sh: /usr/bin/time is missing: apt-get install -y time" >&2; exit 2; }
[[ " $tools " != *" eddy "* ]] || [ -x "$bench_exe" ] || { echo "bench/slot_install.sh: $bench_exe is missing: ninja -C $build slot_install_bench" >&2; exit 2; }

if [ $# -ge 1 ]; then
  work=$1
  mkdir -p "$work"
  keep=1
else
  work=$(mktemp -d /var/tmp/eddy-slot-bench.XXXXXX)
  keep=0
fi
work=$(cd "$work" && pwd)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$keep" = 0 ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# --- the image: a real ext4 file system holding files of this machine, up to 75 % full ----------
image=$work/rootfs.img
if [ ! -s "$image" ]; then
  log "making a ${mib} MiB ext4 image from /usr files"
  rm -rf "$work/tree" && mkdir -p "$work/tree"
  budget=$((mib * 1024 * 1024 * 3 / 4))
  used=0
  while IFS= read -r -d '' file; do
    size=$(stat -c %s "$file")
    [ $((used + size)) -gt "$budget" ] && break
    rel=${file#/usr/}
    mkdir -p "$work/tree/$(dirname "$rel")"
    cp "$file" "$work/tree/$rel"
    used=$((used + size))
  done < <(find /usr/lib /usr/bin /usr/share -xdev -type f -size -8M -print0 2>/dev/null | sort -z)
  mke2fs -q -t ext4 -F -E root_owner=0:0 -d "$work/tree" "$image" "${mib}M"
  rm -rf "$work/tree"
fi
image_bytes=$(stat -c %s "$image")
image_sha=$(sha256sum "$image" | cut -c1-64)
slot_bytes=$((image_bytes + 32 * 1024 * 1024))

for level in $levels; do
  [ -s "$work/rootfs.img.$level.zst" ] || zstd -q -f "-$level" "$image" -o "$work/rootfs.img.$level.zst"
done

# --- RAUC: keys, system.conf, a bootloader backend, bundles -----------------------------------
setup_rauc() {
  mkdir -p "$work/rauc/state" "$work/rauc/mnt" "$work/rauc/data"
  [ -s "$work/rauc/key.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/rauc/key.pem" \
    -out "$work/rauc/cert.pem" -subj "/CN=eddy slot bench" -days 30 2>/dev/null
  cat >"$work/rauc/backend.sh" <<'BACKEND'
#!/bin/sh
# RAUC's custom bootloader backend on a folder of files (rauc.io: "Custom bootloader backend").
state=$(dirname "$0")/state
case "$1" in
  get-primary) cat "$state/primary" 2>/dev/null || echo A ;;
  set-primary) echo "$2" >"$state/primary" ;;
  get-state) cat "$state/state.$2" 2>/dev/null || echo good ;;
  set-state) echo "$3" >"$state/state.$2" ;;
  get-current) echo A ;;
  *) exit 1 ;;
esac
BACKEND
  chmod +x "$work/rauc/backend.sh"
  truncate -s 1M "$work/rauc/slot-a"
  cat >"$work/rauc/system.conf" <<CONF
[system]
compatible=eddy-slot-bench
bootloader=custom
mountprefix=$work/rauc/mnt
data-directory=$work/rauc/data

[handlers]
bootloader-custom-backend=$work/rauc/backend.sh

[keyring]
path=$work/rauc/cert.pem

[slot.rootfs.0]
device=$work/rauc/slot-a
type=raw
bootname=A

[slot.rootfs.1]
device=$work/slot
type=raw
bootname=B
CONF
  cat >"$work/rauc/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$work/rauc/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
CONF
  dbus-daemon --config-file="$work/rauc/bus.conf" --nofork --nopidfile &
  pids+=($!)
  export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$work/rauc/bus
  for level in $levels; do
    local content=$work/rauc/content-$level bundle=$work/rauc/bundle-$level.raucb
    [ -s "$bundle" ] && continue
    rm -rf "$content" && mkdir -p "$content"
    ln "$image" "$content/rootfs.img"
    cat >"$content/manifest.raucm" <<MANIFEST
[update]
compatible=eddy-slot-bench
version=2.0

[bundle]
format=plain

[image.rootfs]
filename=rootfs.img
MANIFEST
    rauc bundle --cert="$work/rauc/cert.pem" --key="$work/rauc/key.pem" \
      --mksquashfs-args="-comp zstd -Xcompression-level $level" "$content" "$bundle" >/dev/null
    rm -rf "$content"
  done
}

# --- SWUpdate: a signed .swu per level -------------------------------------------------------
setup_swupdate() {
  mkdir -p "$work/swu"
  # Debian's SWUpdate verifies CMS signatures (sw-description.sig) against a certificate (-k).
  [ -s "$work/swu/key.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/swu/key.pem" \
    -out "$work/swu/cert.pem" -subj "/CN=eddy slot bench" -days 30 \
    -addext keyUsage=digitalSignature -addext extendedKeyUsage=emailProtection,codeSigning 2>/dev/null
  # Debian's SWUpdate checks the release's hardware-compatibility against /etc/hwrevision: it is
  # given one in a mount namespace of its own (an overlay on /etc), the machine's /etc untouched.
  mkdir -p "$work/swu/etc-upper" "$work/swu/etc-work"
  echo "eddy-slot-bench 1.0" >"$work/swu/etc-upper/hwrevision"
  for level in $levels; do
    local dir=$work/swu/$level
    [ -s "$work/swu/bench-$level.swu" ] && continue
    rm -rf "$dir" && mkdir -p "$dir"
    ln "$work/rootfs.img.$level.zst" "$dir/rootfs.img.zst"
    cat >"$dir/sw-description" <<DESC
software =
{
  version = "2.0";
  hardware-compatibility: [ "1.0" ];
  images: (
    {
      filename = "rootfs.img.zst";
      device = "$work/slot";
      type = "raw";
      compressed = "zstd";
      sha256 = "$(sha256sum "$dir/rootfs.img.zst" | cut -c1-64)";
    }
  );
}
DESC
    openssl cms -sign -in "$dir/sw-description" -out "$dir/sw-description.sig" -signer "$work/swu/cert.pem" \
      -inkey "$work/swu/key.pem" -outform DER -nosmimecap -binary
    (cd "$dir" && printf 'sw-description\nsw-description.sig\nrootfs.img.zst\n' | cpio -o -H crc --quiet >"$work/swu/bench-$level.swu")
    rm -rf "$dir"
  done
}

# --- one run of one tool: prints "seconds peak_kib" -------------------------------------------
reset_slot() {
  dd if=/dev/zero of="$work/slot" bs=4M count=$((slot_bytes / 4194304)) conv=fsync status=none
}

check_slot() {
  cmp -n "$image_bytes" "$work/slot" "$image" >/dev/null ||
    { echo "bench/slot_install.sh: $1 level $2: the slot does not hold the image afterwards" >&2; exit 1; }
}

run_tool() {
  local tool=$1 level=$2 zst=$work/rootfs.img.$2.zst out=$work/time.out
  case $tool in
    plain)
      /usr/bin/time -f "%e %M" -o "$out" bash -c \
        'zstd -dc "$1" | tee >(sha256sum >"$3") | dd of="$2" bs=1M conv=fsync,notrunc status=none; wait $!' \
        _ "$zst" "$work/slot" "$work/plain.sum"
      [ "$(cut -c1-64 "$work/plain.sum")" = "$image_sha" ] || { echo "plain: wrong sha256" >&2; exit 1; }
      cat "$out"
      ;;
    eddy)
      /usr/bin/time -f "%e %M" -o "$out" "$bench_exe" "$zst" --slot "$work/slot" \
        --sha256 "$(sha256sum "$zst" | cut -c1-64)" --image-sha256 "$image_sha" >/dev/null
      cat "$out"
      ;;
    rauc)
      echo A >"$work/rauc/state/primary"
      rauc --conf="$work/rauc/system.conf" service --override-boot-slot=A >"$work/rauc/service.log" 2>&1 &
      local service=$!
      # The service is up once it answers on the bus.
      for _ in $(seq 200); do
        rauc --conf="$work/rauc/system.conf" status >/dev/null 2>&1 && break
        sleep 0.05
      done
      /usr/bin/time -f "%e %M" -o "$out" rauc --conf="$work/rauc/system.conf" install "$work/rauc/bundle-$level.raucb" \
        >"$work/rauc/install.log" 2>&1 || { cat "$work/rauc/install.log" "$work/rauc/service.log" >&2; exit 1; }
      local peak
      peak=$(awk '/^VmHWM:/ {print $2}' "/proc/$service/status")
      kill "$service"
      wait "$service" 2>/dev/null || true
      echo "$(cut -d' ' -f1 "$out") $peak"
      ;;
    swupdate)
      /usr/bin/time -f "%e %M" -o "$out" unshare -m sh -c \
        'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/etc-upper,workdir=$1/etc-work" /etc && exec swupdate -k "$1/cert.pem" -i "$2"' \
        _ "$work/swu" "$work/swu/bench-$level.swu" >"$work/swu/install.log" 2>&1 || { cat "$work/swu/install.log" >&2; exit 1; }
      cat "$out"
      ;;
  esac
}

for tool in $tools; do
  case $tool in rauc) setup_rauc ;; swupdate) setup_swupdate ;; esac
done

log "image ${image_bytes} bytes, sha256 $image_sha; slot ${slot_bytes} bytes; levels $levels; $runs runs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for level in $levels; do log "zstd -$level: $(stat -c %s "$work/rootfs.img.$level.zst") bytes"; done
declare -A results
for level in $levels; do
  for ((run = 1; run <= runs; run++)); do
    for tool in $tools; do
      reset_slot
      r=$(run_tool "$tool" "$level")
      check_slot "$tool" "$level"
      log "level $level run $run $tool: $r s KiB (load $(cut -d' ' -f1 /proc/loadavg))"
      results[$tool.$level]+="$r;"
    done
  done
done

median() { tr ';' '\n' | sed '/^$/d' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
echo
echo "| level | tool | wall s (median of $runs) | vs plain | peak RSS MiB (median) |"
echo "|---|---|---:|---:|---:|"
for level in $levels; do
  plain=$(echo "${results[plain.$level]:-}" | tr ';' '\n' | cut -d' ' -f1 | tr '\n' ';' | median)
  for tool in $tools; do
    wall=$(echo "${results[$tool.$level]}" | tr ';' '\n' | cut -d' ' -f1 | tr '\n' ';' | median)
    kib=$(echo "${results[$tool.$level]}" | tr ';' '\n' | cut -d' ' -f2 | tr '\n' ';' | median)
    ratio=$([ -n "$plain" ] && awk -v a="$wall" -v b="$plain" 'BEGIN {printf "%.2f×", a / b}' || echo -)
    printf '| %s | %s | %s | %s | %.1f |\n' "-$level" "$tool" "$wall" "$ratio" "$(awk -v k="$kib" 'BEGIN {print k / 1024}')"
  done
done
