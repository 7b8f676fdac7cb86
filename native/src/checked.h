// Checked arithmetic and checked conversions from JS numbers. Anything that comes from a file or from JS goes
// through these before it is used as a size, an offset or an index: a NaN, a negative, a fraction or a value
// above 2^53 (where doubles stop being exact integers) is refused, and every sum/product that could wrap is
// tested with the compiler's overflow builtins.
#pragma once
#include <cmath>
#include <cstdint>

namespace coldstart {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1 (Number.MAX_SAFE_INTEGER)

// A whole number in [0, 2^53) → true and *out; anything else → false.
inline bool DoubleToU64(double d, uint64_t* out) {
  if (!std::isfinite(d) || d < 0 || d > kMaxSafeInteger || std::floor(d) != d) return false;
  *out = static_cast<uint64_t>(d);
  return true;
}

// A whole number in [lo, hi] → true and *out.
inline bool DoubleToInt(double d, int64_t lo, int64_t hi, int64_t* out) {
  if (!std::isfinite(d) || std::floor(d) != d || d < static_cast<double>(lo) || d > static_cast<double>(hi)) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

// a + b, false on overflow.
inline bool AddU64(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }
// a * b, false on overflow.
inline bool MulU64(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
// n rounded up to a multiple of m (m > 0), false on overflow.
inline bool RoundUpU64(uint64_t n, uint64_t m, uint64_t* out) {
  uint64_t t;
  if (m == 0 || !AddU64(n, m - 1, &t)) return false;
  *out = t / m * m;
  return true;
}
// A uint64 that must fit size_t and off_t (true on 64-bit Linux for every value below 2^63).
inline bool FitsOffT(uint64_t v) { return v <= static_cast<uint64_t>(INT64_MAX); }

}  // namespace coldstart
