# The target's libraries from dpkg's multiarch (`dpkg --add-architecture`): they live in
# /usr/lib/<triplet> beside the host's, without a sysroot. After common.cmake.
set(EDDY_CROSS_LIBDIR /usr/lib/${EDDY_CROSS_TRIPLET})

# Libraries and CMake packages: the target's multiarch folder only, never the host's
# /usr/lib/x86_64-linux-gnu (find_* with CMAKE_LIBRARY_ARCHITECTURE look in
# <prefix>/lib/<triplet>); headers and header-only packages (asio, nlohmann-json, CLI11)
# come from the host's /usr/include and /usr/share, which are the same for every architecture.
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu
    /usr/lib/x86_64-linux-gnu/cmake)

# pkg-config: the target's .pc files, plus the architecture-independent ones.
set(ENV{PKG_CONFIG_LIBDIR} "${EDDY_CROSS_LIBDIR}/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# The -dev packages that are not multi-arch (Debian ships them for one architecture at a
# time): keep the host's headers (identical across architectures) and link the target's
# runtime library by its full name. Cache values given on the command line win.
set(EDDY_LIBGIT2_LIBRARY ${EDDY_CROSS_LIBDIR}/libgit2.so.1.5 CACHE STRING "")
set(HTTP_PARSER_LIBRARY ${EDDY_CROSS_LIBDIR}/libhttp_parser.so.2.9 CACHE FILEPATH "")
set(yaml-cpp_DIR ${CMAKE_CURRENT_LIST_DIR}/yaml-cpp CACHE PATH "")
# yaml-cpp's static archive for the resident eddyd (daemon/CMakeLists.txt): cross/install-deps
# unpacks the target's libyaml-cpp-dev into its cache, since installing it would remove the
# host's. Absent (an older cache, a failed download): eddyd links yaml-cpp and libstdc++ shared.
if(DEFINED ENV{EDDY_CROSS_CACHE})
  set(_eddy_cross_cache $ENV{EDDY_CROSS_CACHE})
else()
  set(_eddy_cross_cache /var/cache/eddy-cross)
endif()
set(_eddy_yaml_archive ${_eddy_cross_cache}/${CMAKE_SYSTEM_PROCESSOR}/yaml-cpp/libyaml-cpp.a)
if(EXISTS ${_eddy_yaml_archive})
  set(EDDY_YAML_CPP_ARCHIVE ${_eddy_yaml_archive} CACHE FILEPATH "")
endif()

# Test executables (gtest_discover_tests, ctest) run under qemu-user: no binfmt handler
# needed. Without -L: the -dev:<arch> packages bring the target's libc6 along, whose
# /lib/ld-linux-*.so and libc.so.6 then match. With -L /usr/<triplet>, qemu would take the
# cross toolchain's dynamic loader (libc6-<arch>-cross) while /etc/ld.so.cache still leads it
# to the multiarch libc.so.6, a different build: programs hang as soon as they start a thread.
set(CMAKE_CROSSCOMPILING_EMULATOR ${EDDY_CROSS_QEMU})
