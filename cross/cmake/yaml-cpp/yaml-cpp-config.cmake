# yaml-cpp for cross builds. libyaml-cpp-dev is not multi-arch, so only the target's runtime
# package (libyaml-cpp0.7:<arch>) is installed beside the host's -dev package: this defines
# the same imported target as Debian's yaml-cpp-config.cmake, with the host's headers
# (identical across architectures) and the target's shared library.
if(NOT TARGET yaml-cpp)
  find_library(EDDY_YAML_CPP_LIBRARY NAMES libyaml-cpp.so.0.7 yaml-cpp
               PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE} NO_DEFAULT_PATH REQUIRED)
  add_library(yaml-cpp SHARED IMPORTED)
  set_target_properties(yaml-cpp PROPERTIES
    IMPORTED_LOCATION "${EDDY_YAML_CPP_LIBRARY}"
    IMPORTED_NO_SONAME FALSE)
endif()
set(YAML_CPP_LIBRARIES yaml-cpp)
set(yaml-cpp_FOUND TRUE)
