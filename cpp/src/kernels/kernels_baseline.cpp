// The step kernels compiled for the baseline instruction set (flags set in CMakeLists.txt).
#define MEMSGD_KERNEL_TABLE table_baseline
#define MEMSGD_KERNEL_NAME "baseline"
#include "kernels.inc"
