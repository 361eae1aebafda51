# CMake toolchain file: 32-bit Raspberry Pi OS (Debian armhf: ARMv7, hard float; runs on the
# Pi 2/3/4/5 and Zero 2, not the ARMv6 Pi 1/Zero, which Raspberry Pi OS builds for itself).
# Debian's cross compiler (g++-arm-linux-gnueabihf) and the multiarch libraries of
# `dpkg --add-architecture armhf` (/usr/lib/arm-linux-gnueabihf). See aarch64-linux-gnu.cmake.
set(EDDY_CROSS_TRIPLET arm-linux-gnueabihf)
set(EDDY_CROSS_QEMU qemu-arm)
set(CMAKE_SYSTEM_PROCESSOR arm)
include(${CMAKE_CURRENT_LIST_DIR}/cmake/common.cmake)
# GCC's notes that the ABI for passing some structures changed in GCC 7.1 only matter when
# linking with code built by GCC 6 or older; Debian builds armhf the same way.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")
