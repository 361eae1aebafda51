# CMake toolchain file: 32-bit Raspberry Pi OS (Debian armhf: ARMv7, hard float; runs on the
# Pi 2/3/4/5 and Zero 2, not the ARMv6 Pi 1/Zero, which Raspberry Pi OS builds for itself).
# Debian's cross compiler (g++-arm-linux-gnueabihf) and a private sysroot of Debian's armhf
# packages (cross/sysroot: the machine's dpkg does not add armhf, see cross/README.md).
# cross/build installs all of it and passes -DEDDY_CROSS_SYSROOT.
set(EDDY_CROSS_TRIPLET arm-linux-gnueabihf)
set(EDDY_CROSS_ARCH armhf)
set(EDDY_CROSS_QEMU qemu-arm)
set(CMAKE_SYSTEM_PROCESSOR arm)
include(${CMAKE_CURRENT_LIST_DIR}/cmake/common.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/cmake/sysroot.cmake)
# GCC's notes that the ABI for passing some structures changed in GCC 7.1 only matter when
# linking with code built by GCC 6 or older; Debian builds armhf the same way.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")
