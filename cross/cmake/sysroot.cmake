# The target's libraries from a private sysroot: Debian's packages of the target
# architecture unpacked into a folder by cross/sysroot (cross/install-deps runs it), so that
# the machine's dpkg never adds the architecture. After common.cmake.
#
# EDDY_CROSS_SYSROOT names it; cross/build passes the one cross/arch.sh chose
# (EDDY_CROSS_CACHE, /var/cache/eddy-cross by default).
if(NOT EDDY_CROSS_SYSROOT)
  if(DEFINED ENV{EDDY_CROSS_CACHE})
    set(EDDY_CROSS_SYSROOT "$ENV{EDDY_CROSS_CACHE}/${EDDY_CROSS_ARCH}/sysroot")
  else()
    set(EDDY_CROSS_SYSROOT "/var/cache/eddy-cross/${EDDY_CROSS_ARCH}/sysroot")
  endif()
endif()
if(NOT EXISTS "${EDDY_CROSS_SYSROOT}/.eddy-sysroot")
  message(FATAL_ERROR "no ${EDDY_CROSS_ARCH} sysroot at ${EDDY_CROSS_SYSROOT}: make it with "
                      "`cross/install-deps ${EDDY_CROSS_ARCH}` (as root), or configure with "
                      "`cross/build ${EDDY_CROSS_ARCH}`, which does")
endif()
set(EDDY_CROSS_SYSROOT "${EDDY_CROSS_SYSROOT}" CACHE PATH "The private sysroot (cross/sysroot)")
# try_compile projects read this file again: give them the same sysroot.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES EDDY_CROSS_SYSROOT)

# The compiler links against the sysroot's libraries and reads its headers. (Debian's cross
# compiler still takes the C library's and libstdc++'s headers and link files from its own
# /usr/<triplet>, ahead of the sysroot: the same glibc and GCC versions as the sysroot's.)
set(CMAKE_SYSROOT "${EDDY_CROSS_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH "${EDDY_CROSS_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config: only the sysroot's .pc files, their paths moved into the sysroot.
set(ENV{PKG_CONFIG_LIBDIR}
    "${EDDY_CROSS_SYSROOT}/usr/lib/${EDDY_CROSS_TRIPLET}/pkgconfig:${EDDY_CROSS_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${EDDY_CROSS_SYSROOT}")

# Test executables (gtest_discover_tests, ctest) run under qemu-user (no binfmt handler
# needed), with -L: the dynamic loader and every library come from the sysroot, one
# consistent set (Debian's libc6 for the target with its own loader). qemu then looks every
# path up in the sysroot first, which is why cross/sysroot keeps only lib/, usr/lib/,
# usr/include/ and usr/share/{pkgconfig,cmake}/ there: nothing the tests touch.
set(CMAKE_CROSSCOMPILING_EMULATOR ${EDDY_CROSS_QEMU} -L ${EDDY_CROSS_SYSROOT})
