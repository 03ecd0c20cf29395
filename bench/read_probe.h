// SumFloats: reads n floats as fast as the CPU can (for measuring memory read bandwidth).
#pragma once

#include <cstddef>

namespace llms {

float SumFloats(const float* x, size_t n);

}  // namespace llms
