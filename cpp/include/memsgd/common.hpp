// What every part of the core shares: the rule for bad input and the special values.
// The core knows nothing of Python; the binding turns std::invalid_argument into ValueError.
#pragma once

#include <limits>
#include <stdexcept>
#include <string>

namespace memsgd {

inline constexpr double kInf = std::numeric_limits<double>::infinity();
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Bad input: throws std::invalid_argument(message) unless `ok`. The message names the argument
// and the rule it breaks (one line).
inline void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

}  // namespace memsgd
