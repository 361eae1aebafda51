# One INTERFACE target carries the project's warning flags (and sanitizers), so every library
# and executable of ours gets the same ones and third-party code does not.
add_library(eddy_warnings INTERFACE)
target_compile_options(eddy_warnings INTERFACE
  -Wall -Wextra -Wconversion -Wsign-conversion -Wsuggest-override -Wold-style-cast
  -Wnon-virtual-dtor -Wshadow=local)
if(EDDY_WERROR)
  target_compile_options(eddy_warnings INTERFACE -Werror)
endif()
if(EDDY_FAULT_INJECTION)
  target_compile_definitions(eddy_warnings INTERFACE EDDY_FAULT_INJECTION=1)
endif()
if(EDDY_SANITIZE)
  target_compile_options(eddy_warnings INTERFACE -fsanitize=${EDDY_SANITIZE} -fno-omit-frame-pointer)
  target_link_options(eddy_warnings INTERFACE -fsanitize=${EDDY_SANITIZE})
endif()

# A library per folder, made of the folder's .cpp files (except main.cpp, and the files named
# after EXCLUDE, which the folder builds into a library of its own: ota/CMakeLists.txt).
function(eddy_folder_library name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "EXCLUDE")
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  list(FILTER sources EXCLUDE REGEX "/main\\.cpp$")
  foreach(excluded IN LISTS arg_EXCLUDE)
    list(REMOVE_ITEM sources ${CMAKE_CURRENT_SOURCE_DIR}/${excluded})
  endforeach()
  if(NOT sources)
    # Only while a folder is being started; every folder has sources on main.
    message(FATAL_ERROR "${CMAKE_CURRENT_SOURCE_DIR} has no sources")
  endif()
  add_library(${name} STATIC ${sources})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE eddy_warnings)
endfunction()
