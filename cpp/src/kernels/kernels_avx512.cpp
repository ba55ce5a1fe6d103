// The step kernels compiled for the avx512 instruction set (flags set in CMakeLists.txt).
#define MEMSGD_KERNEL_PATH avx512
#define MEMSGD_PROBE_CHAINS 12  // accumulators that fit in the registers
#define MEMSGD_LANE_WIDTH 8  // doubles per native vector
#include "kernels.inc"
