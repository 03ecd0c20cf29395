// Layout tests for the scalar references: hand-built blocks decode to the values ggml's layouts
// define, and quantize -> dequantize round trips stay within per-type error bounds.
#include "formats/weight_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "formats/float16.h"
#include "formats/weight_types.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

template <typename Block>
std::vector<uint8_t> BytesOf(const Block& b) {
  std::vector<uint8_t> out(sizeof(Block));
  std::memcpy(out.data(), &b, sizeof(Block));
  return out;
}

std::vector<float> Dequantize(WeightType type, const std::vector<uint8_t>& row, size_t n) {
  std::vector<float> out(n);
  DequantizeRowRef(type, row.data(), out.data(), n);
  return out;
}

TEST(WeightRefLayout, Q8_0) {
  BlockQ8_0 b;
  b.d = F32ToF16(0.5f);
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j * 8 - 128);
  const std::vector<float> y = Dequantize(WeightType::kQ8_0, BytesOf(b), 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j * 8 - 128) * 0.5f) << j;
}

TEST(WeightRefLayout, Q4_0LowNibbleIsFirstHalf) {
  BlockQ4_0 b;
  b.d = F32ToF16(0.25f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const std::vector<float> y = Dequantize(WeightType::kQ4_0, BytesOf(b), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.25f) << j;
    EXPECT_EQ(y[j + 16], (15 - j - 8) * 0.25f) << j;
  }
}

// Scales and mins above 15 exercise the 2 high bits that live in bytes 0..7.
TEST(WeightRefLayout, Q4_K) {
  const int sc[8] = {1, 7, 20, 63, 33, 48, 5, 62};
  const int mn[8] = {0, 3, 40, 17, 63, 2, 31, 50};
  BlockQ4_K b;
  b.d = F32ToF16(0.5f);
  b.dmin = F32ToF16(0.25f);
  // ggml's packing, spelled out: bytes 0-3 scales 0-3 (+ high bits of scales 4-7 in bits 6-7),
  // bytes 4-7 mins 0-3 (+ high bits of mins 4-7), bytes 8-11 low nibbles of scale/min 4-7.
  for (int j = 0; j < 4; ++j) {
    b.scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    b.scales[j + 4] = static_cast<uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    b.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
  for (int k = 0; k < 128; ++k) b.qs[k] = static_cast<uint8_t>((k % 16) | (((k * 7) % 16) << 4));
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    GetScaleMinK4(j, b.scales, &s, &m);
    EXPECT_EQ(s, sc[j]) << j;
    EXPECT_EQ(m, mn[j]) << j;
  }
  const std::vector<float> y = Dequantize(WeightType::kQ4_K, BytesOf(b), 256);
  for (int i = 0; i < 256; ++i) {
    const int j = i / 32;                     // sub-block
    const int byte = 32 * (i / 64) + i % 32;  // 32 bytes per 64 values
    const int q = (j % 2 == 0) ? b.qs[byte] & 0xF : b.qs[byte] >> 4;
    const float expected = 0.5f * sc[j] * q - 0.25f * mn[j];
    EXPECT_EQ(y[i], expected) << i;
  }
}

TEST(WeightRefLayout, Q6_K) {
  BlockQ6_K b;
  b.d = F32ToF16(0.5f);
  for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(j * 9 - 70);  // some negative
  for (int k = 0; k < 128; ++k) b.ql[k] = static_cast<uint8_t>((k * 37 + 11) % 256);
  for (int k = 0; k < 64; ++k) b.qh[k] = static_cast<uint8_t>((k * 101 + 7) % 256);
  const std::vector<float> y = Dequantize(WeightType::kQ6_K, BytesOf(b), 256);
  for (int i = 0; i < 256; ++i) {
    const int half = i / 128, k = (i % 128) / 32, l = i % 32;
    // Values l and l+64 share ql byte l, values l+32 and l+96 share byte l+32.
    const uint8_t ql = b.ql[64 * half + l + 32 * (k % 2)];
    const int low = k < 2 ? (ql & 0xF) : (ql >> 4);
    const int high = (b.qh[32 * half + l] >> (2 * k)) & 3;
    const int q = (low | (high << 4)) - 32;
    const float expected = 0.5f * b.scales[i / 16] * q;
    EXPECT_EQ(y[i], expected) << i;
  }
}

TEST(WeightRefLayout, FloatTypes) {
  const float values[4] = {1.0f, -2.5f, 65504.0f, 1.0f / 1024};
  std::vector<uint8_t> f16(8), bf16(8);
  const uint16_t f16_bits[4] = {0x3C00, 0xC100, 0x7BFF, 0x1400};
  const uint16_t bf16_bits[4] = {0x3F80, 0xC020, 0x4780, 0x3A80};
  std::memcpy(f16.data(), f16_bits, 8);
  std::memcpy(bf16.data(), bf16_bits, 8);
  const std::vector<float> a = Dequantize(WeightType::kF16, f16, 4);
  const std::vector<float> b = Dequantize(WeightType::kBF16, bf16, 4);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(a[i], values[i]) << i;
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -2.5f);
  EXPECT_EQ(b[2], 65536.0f);
  EXPECT_EQ(b[3], 1.0f / 1024);
}

// ggml's Q4_0 quantizer on x = j - 16: the largest magnitude is -16, so d = -16 / -8 = 2 and
// nibble = min(15, trunc(x / 2 + 8.5)).
TEST(WeightRefQuantize, Q4_0MatchesGgml) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  BlockQ4_0 b;
  QuantizeRowRef(WeightType::kQ4_0, x.data(), reinterpret_cast<uint8_t*>(&b), 32);
  EXPECT_EQ(b.d, F32ToF16(2.0f));
  for (int j = 0; j < 16; ++j) {
    const int q0 = std::min(15, static_cast<int>((j - 16) * 0.5f + 8.5f));
    const int q1 = std::min(15, static_cast<int>((j - 0) * 0.5f + 8.5f));
    EXPECT_EQ(b.qs[j], q0 | (q1 << 4)) << j;
  }
}

TEST(WeightRefQuantize, Q8_0MatchesGgml) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = (j - 15.5f) / 10;
  BlockQ8_0 b;
  QuantizeRowRef(WeightType::kQ8_0, x.data(), reinterpret_cast<uint8_t*>(&b), 32);
  const float d = 1.55f / 127;
  EXPECT_EQ(b.d, F32ToF16(d));
  for (int j = 0; j < 32; ++j) EXPECT_EQ(b.qs[j], std::round(x[j] * (1.0f / d))) << j;
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[31], 127);
}

// ---- Round trips ----

constexpr double kF16Rel = 1.0 / 2048;  // half an ulp of an 11-bit significand
constexpr double kBF16Rel = 1.0 / 256;  // half an ulp of an 8-bit significand, rounded up

// Largest error of storing scale `d` as f16: relative for normals, absolute (half the
// subnormal spacing 2^-24) for the tiny scales of tiny weights.
double F16Error(double d) { return std::max(d * kF16Rel, std::ldexp(1.0, -25)); }

// Largest allowed |x - decoded| for each value of `x` under `type`, derived from the quantizer
// (weight_ref.cc): rounding to the nearest level is half a step; a sub-block scale rounded to
// 6 or 8 bits of the super-block scale d is off by at most d/2 (plus the f16 error of d times
// the largest multiplier), and clipping the top value turns that into (levels / 2) times as
// much.
std::vector<double> RoundTripBound(WeightType type, const std::vector<float>& x) {
  const size_t n = x.size();
  std::vector<double> bound(n, 0.0);
  auto block_absmax = [&](size_t start, size_t len) {
    double m = 0;
    for (size_t i = start; i < start + len; ++i) m = std::max(m, std::fabs(double{x[i]}));
    return m;
  };
  switch (type) {
    case WeightType::kF32:
      break;
    case WeightType::kF16:
    case WeightType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        const double rel = type == WeightType::kF16 ? kF16Rel : kBF16Rel;
        bound[i] = std::fabs(x[i]) * rel + std::ldexp(1.0, -25);
      }
      break;
    case WeightType::kQ8_0:
      for (size_t b = 0; b < n; b += 32) {
        const double d = block_absmax(b, 32) / 127;
        for (size_t i = b; i < b + 32; ++i) bound[i] = (0.5 * d + 127 * F16Error(d)) * 1.001;
      }
      break;
    case WeightType::kQ4_0:
      // The value opposite the scale's sign can clip from 8 to 7 steps: one full step.
      for (size_t b = 0; b < n; b += 32) {
        const double d = block_absmax(b, 32) / 8;
        for (size_t i = b; i < b + 32; ++i) bound[i] = (d + 8 * F16Error(d)) * 1.001;
      }
      break;
    case WeightType::kQ4_K:
      for (size_t b = 0; b < n; b += 256) {
        double s[8], max_s = 0, max_m = 0;
        for (int j = 0; j < 8; ++j) {
          double lo = 0, hi = x[b + 32 * j];
          for (int l = 0; l < 32; ++l) {
            lo = std::min(lo, double{x[b + 32 * j + l]});
            hi = std::max(hi, double{x[b + 32 * j + l]});
          }
          s[j] = std::max(hi - lo, 0.0) / 15;
          max_s = std::max(max_s, s[j]);
          max_m = std::max(max_m, -lo);
        }
        const double d = max_s / 63, dmin = max_m / 63;
        const double scale_err = d / 2 + 64 * F16Error(d);
        const double min_err = dmin / 2 + 64 * F16Error(dmin);
        for (int j = 0; j < 8; ++j) {
          for (int l = 0; l < 32; ++l) {
            bound[b + 32 * j + l] = (s[j] / 2 + 15.5 * scale_err + min_err) * 1.01;
          }
        }
      }
      break;
    case WeightType::kQ6_K:
      for (size_t b = 0; b < n; b += 256) {
        double s[16], max_s = 0;
        for (int j = 0; j < 16; ++j) {
          s[j] = block_absmax(b + 16 * j, 16) / 31;
          max_s = std::max(max_s, s[j]);
        }
        const double d = max_s / 127;
        const double scale_err = d / 2 + 128 * F16Error(d);
        for (int j = 0; j < 16; ++j) {
          for (int l = 0; l < 16; ++l) bound[b + 16 * j + l] = (s[j] / 2 + 31.5 * scale_err) * 1.01;
        }
      }
      break;
  }
  return bound;
}

void ExpectRoundTrip(WeightType type, const std::vector<float>& x) {
  const size_t n = x.size();
  std::vector<uint8_t> row(RowBytes(type, n));
  ASSERT_FALSE(row.empty());
  QuantizeRowRef(type, x.data(), row.data(), n);
  const std::vector<float> y = Dequantize(type, row, n);
  const std::vector<double> bound = RoundTripBound(type, x);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_LE(std::fabs(double{y[i]} - x[i]), bound[i])
        << GetWeightTypeInfo(type)->name << " value " << i << " x=" << x[i] << " y=" << y[i];
  }
  // DotRef is the dequantized row summed in double.
  const std::vector<float> ones(n, 1.0f);
  double sum = 0;
  for (float v : y) sum += v;
  EXPECT_EQ(DotRef(type, row.data(), ones.data(), n), sum);
}

const WeightType kAllTypes[] = {WeightType::kF32,  WeightType::kF16,  WeightType::kBF16,
                                WeightType::kQ8_0, WeightType::kQ4_0, WeightType::kQ4_K,
                                WeightType::kQ6_K};

TEST(WeightRefQuantize, RoundTripWithinBounds) {
  for (WeightType type : kAllTypes) {
    for (uint32_t seed = 1; seed <= 4; ++seed) {
      ExpectRoundTrip(type, testing::RandomFloats(1024, seed));
      ExpectRoundTrip(type, testing::RandomFloats(512, seed + 100, 0.5f, 3.0f));    // all > 0
      ExpectRoundTrip(type, testing::RandomFloats(512, seed + 200, -4.0f, -0.1f));  // all < 0
      ExpectRoundTrip(type, testing::RandomFloats(256, seed + 300, -1e-3f, 2e-3f));
    }
    // A zero super-block followed by one with a single large value.
    std::vector<float> x(512, 0.0f);
    x[300] = 7.0f;
    ExpectRoundTrip(type, x);
  }
}

// The bounds above are worst cases; typical error should be far smaller. A quantizer that
// rounded the wrong way or dropped a scale bit would still pass them, so also check the RMS.
TEST(WeightRefQuantize, RmsErrorIsSmall) {
  const std::vector<float> x = testing::RandomFloats(4096, 7);
  const struct {
    WeightType type;
    double max_rms;  // for uniform [-1, 1]: step / sqrt(12) with some slack
  } cases[] = {{WeightType::kF16, 3e-4},  {WeightType::kBF16, 1e-3}, {WeightType::kQ8_0, 3e-3},
               {WeightType::kQ4_0, 5e-2}, {WeightType::kQ4_K, 5e-2}, {WeightType::kQ6_K, 1.2e-2}};
  for (const auto& c : cases) {
    std::vector<uint8_t> row(RowBytes(c.type, x.size()));
    QuantizeRowRef(c.type, x.data(), row.data(), x.size());
    const std::vector<float> y = Dequantize(c.type, row, x.size());
    double sq = 0;
    for (size_t i = 0; i < x.size(); ++i) sq += (double{y[i]} - x[i]) * (double{y[i]} - x[i]);
    EXPECT_LT(std::sqrt(sq / x.size()), c.max_rms) << GetWeightTypeInfo(c.type)->name;
  }
}

}  // namespace
}  // namespace llms
