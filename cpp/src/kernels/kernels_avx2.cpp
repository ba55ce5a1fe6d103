// The step kernels compiled for the avx2 instruction set (flags set in CMakeLists.txt).
#define MEMSGD_KERNEL_PATH avx2
#define MEMSGD_PROBE_CHAINS 6  // accumulators that fit in the registers
#define MEMSGD_LANE_WIDTH 4  // doubles per native vector
#include "kernels.inc"
