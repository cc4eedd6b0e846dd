/* attention.h — CPU kernels of this family (see cpu.h). */
#ifndef GROVE_KERNELS_CPU_ATTENTION_H
#define GROVE_KERNELS_CPU_ATTENTION_H

#include <stdint.h>

#endif
