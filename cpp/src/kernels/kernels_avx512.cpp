// The step kernels compiled for the avx512 instruction set (flags set in CMakeLists.txt).
#define MEMSGD_KERNEL_TABLE table_avx512
#define MEMSGD_KERNEL_NAME "avx512"
#include "kernels.inc"
