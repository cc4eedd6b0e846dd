# emulator.cmake — GROVE_CUDA=EMULATOR: each kernels/cuda/*.cu becomes a C++
# file (rewrite.cmake) compiled by the host compiler with device.hpp
# force-included; runtime.cpp stands in for the CUDA runtime and cuBLAS
# (cublas_lazy.c, which dlopens the real one, is left out).
set(GROVE_EMU_DIR ${CMAKE_CURRENT_LIST_DIR})
set(emu_sources "")
foreach(src IN LISTS GROVE_CUDA_SOURCES)
  get_filename_component(ext "${src}" EXT)
  get_filename_component(name "${src}" NAME_WE)
  if(name STREQUAL "cublas_lazy")
    continue()
  endif()
  if(ext STREQUAL ".cu")
    set(out "${CMAKE_BINARY_DIR}/cuda_emu/${name}.cpp")
    add_custom_command(OUTPUT "${out}"
      COMMAND ${CMAKE_COMMAND} -DIN=${src} -DOUT=${out} -P ${GROVE_EMU_DIR}/rewrite.cmake
      DEPENDS "${src}" ${GROVE_EMU_DIR}/rewrite.cmake
      COMMENT "cuda emulator: ${name}.cu")
    set_source_files_properties("${out}" PROPERTIES
      COMPILE_OPTIONS "-include;${GROVE_EMU_DIR}/device.hpp;-I${CMAKE_SOURCE_DIR}/kernels/cuda")
    list(APPEND emu_sources "${out}")
  else()
    list(APPEND emu_sources "${src}")
  endif()
endforeach()
list(APPEND emu_sources ${GROVE_EMU_DIR}/runtime.cpp)
set(GROVE_CUDA_SOURCES ${emu_sources})
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-Wall> $<$<COMPILE_LANGUAGE:CXX>:-Wextra> $<$<COMPILE_LANGUAGE:CXX>:-Werror>
                    $<$<COMPILE_LANGUAGE:CXX>:-O2>)
