// What every part of the core shares: the rule for bad input and the special values.
// The core knows nothing of Python; the binding turns std::invalid_argument into ValueError.
#pragma once

#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

namespace memsgd {

inline constexpr double kInf = std::numeric_limits<double>::infinity();
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Bad input: throws std::invalid_argument(message) unless `ok`. The message names the argument
// and the rule it breaks (one line). The const char* overload keeps a literal message from being
// copied into a std::string on every call; a check over every node or step must not build its
// message per element either (test each element, then require once: see all_of below).
inline void require(bool ok, const char* message) {
  if (!ok) throw std::invalid_argument(message);
}
inline void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

// True when pred(x[i]) holds for every i < n (the element loop of a validation, message-free).
template <class T, class Pred>
inline bool all_of(const T* x, std::size_t n, Pred pred) {
  for (std::size_t i = 0; i < n; ++i)
    if (!pred(x[i])) return false;
  return true;
}

}  // namespace memsgd
