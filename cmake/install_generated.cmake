# Runs during `cmake --install` (an install(CODE) in CMakeLists.txt includes
# it), when CMAKE_INSTALL_PREFIX is the prefix really installed to — which
# `--prefix` may change after configuring — so the files written here name
# the right directories:
#   <luadir>/grove/cdefs.lua  the build's FFI declarations, with the installed
#                             libgrove's path, relative to <luadir> and absolute
#   <libdir>/pkgconfig/grove.pc
# Inputs (set by the install(CODE)): GROVE_BUILD_CDEFS, GROVE_STAGE_DIR,
# GROVE_PC_IN, GROVE_VERSION, GROVE_LIBRARY_NAME and the install directories
# GROVE_LIBDIR, GROVE_INCLUDEDIR, GROVE_LUADIR (relative to the prefix or absolute).
foreach(var LIBDIR INCLUDEDIR LUADIR)
  if(IS_ABSOLUTE "${GROVE_${var}}")
    set(abs_${var} "${GROVE_${var}}")
    set(pc_${var} "${GROVE_${var}}")
  else()
    set(abs_${var} "${CMAKE_INSTALL_PREFIX}/${GROVE_${var}}")
    set(pc_${var} "\${prefix}/${GROVE_${var}}")
  endif()
endforeach()

# cdefs.lua: same declarations, the installed library
file(READ "${GROVE_BUILD_CDEFS}" cdefs)
file(RELATIVE_PATH lib_rel "${abs_LUADIR}" "${abs_LIBDIR}/${GROVE_LIBRARY_NAME}")
string(REGEX REPLACE "\n  library = \\[\\[[^]]*\\]\\],"
       "\n  library = [[${abs_LIBDIR}/${GROVE_LIBRARY_NAME}]],\n  library_relative = [[${lib_rel}]]," cdefs "${cdefs}")
if(NOT cdefs MATCHES "library_relative")
  message(FATAL_ERROR "install: ${GROVE_BUILD_CDEFS} has no `library = [[...]]` line to rewrite")
endif()
file(WRITE "${GROVE_STAGE_DIR}/cdefs.lua" "${cdefs}")
file(INSTALL DESTINATION "${abs_LUADIR}/grove" TYPE FILE FILES "${GROVE_STAGE_DIR}/cdefs.lua")

# grove.pc
set(GROVE_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(GROVE_PC_LIBDIR "${pc_LIBDIR}")
set(GROVE_PC_INCLUDEDIR "${pc_INCLUDEDIR}")
set(GROVE_PC_LUADIR "${pc_LUADIR}")
configure_file("${GROVE_PC_IN}" "${GROVE_STAGE_DIR}/grove.pc" @ONLY)
file(INSTALL DESTINATION "${abs_LIBDIR}/pkgconfig" TYPE FILE FILES "${GROVE_STAGE_DIR}/grove.pc")
