# Extracts the FFI region of grove.h (between GROVE_FFI_BEGIN and
# GROVE_FFI_END) into a Lua module, so the Lua declarations can never drift
# from the C header. Run by the build: cmake -DHEADER=… -DOUTPUT=… -DLIBRARY=… -P
file(READ "${HEADER}" text)
string(FIND "${text}" "/* GROVE_FFI_BEGIN */" begin)
string(FIND "${text}" "/* GROVE_FFI_END */" end)
if(begin EQUAL -1 OR end EQUAL -1)
  message(FATAL_ERROR "gen_cdefs: ${HEADER} lacks the GROVE_FFI_BEGIN/END markers")
endif()
string(LENGTH "/* GROVE_FFI_BEGIN */" marker_len)
math(EXPR start "${begin} + ${marker_len}")
math(EXPR len "${end} - ${start}")
string(SUBSTRING "${text}" ${start} ${len} body)
# Drop preprocessor lines; LuaJIT's C parser does not take them.
string(REGEX REPLACE "\n#[^\n]*" "" body "${body}")
file(WRITE "${OUTPUT}.tmp"
"-- Generated from core/include/grove.h by scripts/gen_cdefs.cmake; do not edit.
return {
  library = [[${LIBRARY}]],
  cdef = [==[${body}]==],
}
")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
