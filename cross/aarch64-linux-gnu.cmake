# CMake toolchain file: Raspberry Pi 3/4/5 with a 64-bit OS (Debian/Raspberry Pi OS arm64).
# Debian's cross compiler (g++-aarch64-linux-gnu) and the multiarch libraries of
# `dpkg --add-architecture arm64` (/usr/lib/aarch64-linux-gnu); no sysroot: the target's
# libraries live beside the host's. cross/build installs all of it and passes the rest
# (libgit2, http-parser and yaml-cpp, whose -dev packages are not multi-arch).
set(EDDY_CROSS_TRIPLET aarch64-linux-gnu)
set(EDDY_CROSS_QEMU qemu-aarch64)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/cmake/common.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/cmake/multiarch.cmake)
