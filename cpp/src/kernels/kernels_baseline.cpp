// The step kernels compiled for the baseline instruction set (flags set in CMakeLists.txt).
#define MEMSGD_KERNEL_PATH baseline
#define MEMSGD_PROBE_CHAINS 3  // accumulators that fit in the registers
#define MEMSGD_LANE_WIDTH 2  // doubles per native vector
#include "kernels.inc"
