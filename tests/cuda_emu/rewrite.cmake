# rewrite.cmake — turns a .cu file into C++ for the emulator (device.hpp):
#   name<<<grid, block, shared, stream>>>(args)
#     -> gv_emu::launch(gv_emu::cfg(grid, block, shared, stream),
#                       [](auto... a) { name(a...); }, "name")(args)
#   extern __shared__ T name[];  ->  T *name = (T *)gv_emu::dynamic_shared();
# Usage: cmake -DIN=file.cu -DOUT=file.cpp -P rewrite.cmake
file(READ "${IN}" src)
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_]*(<[A-Za-z0-9_, ]*>)?)<<<([^>]*)>>>"
       "gv_emu::launch(gv_emu::cfg(\\3), [](auto... gv_emu_a) { \\1(gv_emu_a...); }, \"\\1\")" src "${src}")
string(REGEX REPLACE "extern __shared__ ([A-Za-z_][A-Za-z0-9_ ]*[A-Za-z0-9_]) +([A-Za-z_][A-Za-z0-9_]*)\\[\\];"
       "\\1 *\\2 = (\\1 *)gv_emu::dynamic_shared();" src "${src}")
if(src MATCHES "<<<|extern __shared__")
  message(FATAL_ERROR "${IN}: a launch or dynamic shared array this script cannot rewrite")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${src}")
file(RENAME "${OUT}.tmp" "${OUT}")
