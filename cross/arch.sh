# Sourced by the cross/ scripts: eddy_arch NAME sets what an architecture name means.
#   ARCH      the name used in folders (build-ARCH, out/): aarch64, armhf, amd64
#   DEB_ARCH  Debian's name: arm64, armhf, amd64
#   TRIPLET   GNU triplet and multiarch folder: aarch64-linux-gnu, ...
#   TOOLCHAIN CMake toolchain file (empty for amd64, the native build)
#   QEMU      qemu-user program (empty for amd64)
#   SYSROOT   the private sysroot of the target's libraries (cross/sysroot), for the
#             architectures whose libraries cannot come from dpkg's multiarch (armhf, see
#             cross/README.md); empty otherwise. Under EDDY_CROSS_CACHE (/var/cache/eddy-cross).
eddy_arch() {
  case "$1" in
    aarch64 | arm64)
      ARCH=aarch64 DEB_ARCH=arm64 TRIPLET=aarch64-linux-gnu QEMU=qemu-aarch64 ;;
    armhf | arm | armv7)
      ARCH=armhf DEB_ARCH=armhf TRIPLET=arm-linux-gnueabihf QEMU=qemu-arm ;;
    amd64 | x86_64 | native)
      ARCH=amd64 DEB_ARCH=amd64 TRIPLET=x86_64-linux-gnu QEMU= ;;
    *)
      echo "usage: $(basename "$0") aarch64|armhf|amd64" >&2
      exit 2 ;;
  esac
  SYSROOT=
  [ "$ARCH" = armhf ] && SYSROOT=${EDDY_CROSS_CACHE:-/var/cache/eddy-cross}/$ARCH/sysroot
  TOOLCHAIN=
  [ -n "$QEMU" ] && TOOLCHAIN="$EDDY_SOURCE/cross/$TRIPLET.cmake"
  STRIP=strip READELF=readelf
  if [ "$DEB_ARCH" != amd64 ]; then STRIP=$TRIPLET-strip READELF=$TRIPLET-readelf; fi
  export ARCH DEB_ARCH TRIPLET QEMU SYSROOT TOOLCHAIN STRIP READELF
}
EDDY_SOURCE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# eddy_debian_mirror: the Debian mirror to download target packages from: EDDY_DEBIAN_MIRROR,
# else the one the machine's apt sources use for its own release's main component (what
# `apt-get indextargets` reads from sources.list and sources.list.d), else deb.debian.org.
eddy_debian_mirror() {
  local codename mirror
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  mirror=${EDDY_DEBIAN_MIRROR:-$(apt-get indextargets --format '$(REPO_URI)' "Release: $codename" \
    "Component: main" "Created-By: Packages" 2>/dev/null | head -n 1)}
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "${mirror%/}"
}
