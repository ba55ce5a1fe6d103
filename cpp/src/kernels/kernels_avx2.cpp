// The step kernels compiled for the avx2 instruction set (flags set in CMakeLists.txt).
#define MEMSGD_KERNEL_TABLE table_avx2
#define MEMSGD_KERNEL_NAME "avx2"
#include "kernels.inc"
