# Every dependency comes from a Debian package. Imported targets are made here once so the
# folders below only name them.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(LIBZSTD REQUIRED IMPORTED_TARGET libzstd)
pkg_check_modules(LIBSODIUM REQUIRED IMPORTED_TARGET libsodium)
pkg_check_modules(LIBARCHIVE REQUIRED IMPORTED_TARGET libarchive)
# OpenSSL's libcrypto: SHA-256 with the CPU's SHA instructions (ota/sha256.hpp).
pkg_check_modules(LIBCRYPTO REQUIRED IMPORTED_TARGET libcrypto)
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)

# libgit2: on cross builds only the runtime library of the target architecture is installed
# (libgit2-dev is not multi-arch); EDDY_LIBGIT2_LIBRARY then names it and the host headers serve.
set(EDDY_LIBGIT2_LIBRARY "" CACHE STRING "Explicit libgit2 library to link (cross builds)")
if(EDDY_LIBGIT2_LIBRARY)
  add_library(eddy_libgit2 INTERFACE)
  target_link_libraries(eddy_libgit2 INTERFACE ${EDDY_LIBGIT2_LIBRARY})
else()
  pkg_check_modules(LIBGIT2 REQUIRED IMPORTED_TARGET libgit2)
  add_library(eddy_libgit2 INTERFACE)
  target_link_libraries(eddy_libgit2 INTERFACE PkgConfig::LIBGIT2)
endif()

# mbedTLS 2.28 ships no pkg-config or CMake files in Debian.
find_path(MBEDTLS_INCLUDE_DIR mbedtls/ssl.h REQUIRED)
find_library(MBEDTLS_LIBRARY mbedtls REQUIRED)
find_library(MBEDX509_LIBRARY mbedx509 REQUIRED)
find_library(MBEDCRYPTO_LIBRARY mbedcrypto REQUIRED)
add_library(eddy_mbedtls INTERFACE)
target_include_directories(eddy_mbedtls SYSTEM INTERFACE ${MBEDTLS_INCLUDE_DIR})
target_link_libraries(eddy_mbedtls INTERFACE ${MBEDTLS_LIBRARY} ${MBEDX509_LIBRARY} ${MBEDCRYPTO_LIBRARY})

# Standalone Asio is header-only.
find_path(ASIO_INCLUDE_DIR asio.hpp REQUIRED)
add_library(eddy_asio INTERFACE)
target_include_directories(eddy_asio SYSTEM INTERFACE ${ASIO_INCLUDE_DIR})
target_compile_definitions(eddy_asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED)
target_link_libraries(eddy_asio INTERFACE Threads::Threads)

# http-parser (the parser libgit2 itself uses) for HTTP/1.1 messages.
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
find_library(HTTP_PARSER_LIBRARY http_parser REQUIRED)
add_library(eddy_http_parser INTERFACE)
target_include_directories(eddy_http_parser SYSTEM INTERFACE ${HTTP_PARSER_INCLUDE_DIR})
target_link_libraries(eddy_http_parser INTERFACE ${HTTP_PARSER_LIBRARY})

# yaml-cpp as a static archive, for the resident eddyd only (daemon/CMakeLists.txt,
# EDDY_EDDYD_STATIC_CXX): Debian's libyaml-cpp-dev ships libyaml-cpp.a beside the shared library.
# Looked for beside the shared library the build links, unless a toolchain file named one: the
# arm64 cross build installs only the target's runtime package (libyaml-cpp-dev is not
# multi-arch), and cross/install-deps unpacks the target's archive into its cache instead
# (cross/cmake/multiarch.cmake). None found: eddyd links yaml-cpp and libstdc++ shared.
if(NOT EDDY_YAML_CPP_ARCHIVE)
  set(EDDY_YAML_CPP_ARCHIVE "")
  get_target_property(_eddy_yaml_location yaml-cpp LOCATION)
  if(_eddy_yaml_location)
    get_filename_component(_eddy_yaml_dir "${_eddy_yaml_location}" DIRECTORY)
    if(EXISTS "${_eddy_yaml_dir}/libyaml-cpp.a")
      set(EDDY_YAML_CPP_ARCHIVE "${_eddy_yaml_dir}/libyaml-cpp.a")
    endif()
  endif()
endif()
