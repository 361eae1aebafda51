# Turns any file (a web page, an icon) into a C++ function returning its bytes, so the file ships
# inside the executable: -DINPUT=file -DOUTPUT=file.cpp -DHEADER=the header declaring it
# -DNAMESPACE=eddy::fleet -DFUNCTION=web_page (std::string_view FUNCTION()). Bytes, not text, so
# whatever the file holds compiles.
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n    " bytes "${bytes}")
get_filename_component(name "${INPUT}" NAME)
set(out "// Generated from ${name} by cmake/EmbedFile.cmake.\n#include \"${HEADER}\"\n\nnamespace ${NAMESPACE} {\nstd::string_view ${FUNCTION}() {\n  // One byte more than the file, so an empty file still makes a valid array.\n  static constexpr unsigned char bytes[] = {\n    ${bytes}0x00};\n  return {reinterpret_cast<const char*>(bytes), sizeof bytes - 1};\n}\n}  // namespace ${NAMESPACE}\n")
file(WRITE "${OUTPUT}.tmp" "${out}")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
