// KV slice encodings: layout sizes, bit packing, and round-trip error per level against the
// bound the level's step size allows.
#include "formats/kv_quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "formats/float16.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

TEST(KvFormatTest, SizesFollowTheDocumentedLayout) {
  const KvLayout layout{4, 8, 16};  // stories260K: width 32, one V group per token
  EXPECT_EQ(layout.width(), 32u);
  EXPECT_EQ(layout.v_group(), 32u);
  EXPECT_EQ(layout.LayerBytes(KvLevel::kF16), 2u * 32 * 16 * 2);
  // int4: K params 32*4, K values 32*16/2, V params 16*1*4, V values 16*32/2.
  EXPECT_EQ(layout.LayerBytes(KvLevel::kInt4), 128u + 256 + 64 + 256);
  const KvLayout big{4, 64, 16};  // TinyLlama: width 256, 8 V groups per token
  EXPECT_EQ(big.v_group(), 32u);
  EXPECT_EQ(big.VParamsBytes(KvLevel::kInt2), 16u * 8 * 4);
  EXPECT_LT(big.LayerBytes(KvLevel::kInt2), big.LayerBytes(KvLevel::kInt4));
  EXPECT_LT(big.LayerBytes(KvLevel::kInt4), big.LayerBytes(KvLevel::kInt8));
  EXPECT_LT(big.LayerBytes(KvLevel::kInt8), big.LayerBytes(KvLevel::kF16));
  EXPECT_TRUE(layout.Validate().empty());
  EXPECT_FALSE((KvLayout{4, 6, 16}).Validate().empty());
  EXPECT_FALSE((KvLayout{4, 8, 12}).Validate().empty());
}

TEST(KvFormatTest, LevelNamesRoundTrip) {
  for (int i = 0; i < kNumKvLevels; ++i) {
    const auto level = static_cast<KvLevel>(i);
    EXPECT_EQ(ParseKvLevel(KvLevelName(level)), level);
  }
  EXPECT_FALSE(ParseKvLevel("int3").has_value());
}

TEST(KvQuantTest, PackUnpackEveryBitWidth) {
  for (int bits : {2, 4, 8}) {
    std::vector<uint8_t> run(64 * bits / 8, 0xA5);
    for (size_t i = 0; i < 64; ++i) PackValue(run.data(), i, bits, (i * 7) % (1u << bits));
    for (size_t i = 0; i < 64; ++i) {
      EXPECT_EQ(UnpackValue(run.data(), i, bits), (i * 7) % (1u << bits)) << bits << " " << i;
    }
  }
}

// Squared error of 2-bit min-max quantization (f16-rounded params) of token-major `x` (`width`
// values per token): per channel over the tokens (K) or per group of 32 values of a token (V;
// `width` is a multiple of 32 or smaller than it).
double MinMaxSquaredError(const std::vector<float>& x, size_t width, size_t tokens,
                          bool per_channel) {
  const size_t group = per_channel ? tokens : std::min<size_t>(width, 32);
  const size_t groups = x.size() / group;
  double sum = 0;
  for (size_t g = 0; g < groups; ++g) {
    auto at = [&](size_t i) {
      return per_channel ? x[i * width + g]
                         : x[(g * group / width) * width + g * group % width + i];
    };
    float lo = at(0), hi = at(0);
    for (size_t i = 1; i < group; ++i) {
      lo = std::min(lo, at(i));
      hi = std::max(hi, at(i));
    }
    const float scale = F16ToF32(F32ToF16((hi - lo) / 3)), minv = F16ToF32(F32ToF16(lo));
    for (size_t i = 0; i < group; ++i) {
      const float q = std::clamp(std::nearbyint((at(i) - minv) / scale), 0.0f, 3.0f);
      const double d = static_cast<double>(scale * q + minv) - at(i);
      sum += d * d;
    }
  }
  return sum;
}

class KvRoundTripTest : public ::testing::TestWithParam<std::tuple<KvLevel, size_t, size_t>> {};

TEST_P(KvRoundTripTest, ErrorWithinHalfAStep) {
  const auto [level, head_dim, tokens] = GetParam();
  const KvLayout layout{2, head_dim, tokens};
  const size_t n = layout.width() * tokens;
  auto k = testing::RandomFloats(n, 11, -4, 4), v = testing::RandomFloats(n, 12, -2, 2);
  std::vector<uint8_t> slice(layout.LayerBytes(level));
  EncodeKvSlice(layout, level, k.data(), v.data(), tokens, slice.data());
  std::vector<float> k2(n), v2(n);
  DecodeKvSlice(layout, level, slice.data(), k2.data(), v2.data());
  // Range 8 (K) and 4 (V) over 2^bits - 1 steps; half a step plus f16 rounding of params.
  const double steps = level == KvLevel::kF16 ? 1e9 : (1 << KvLevelBits(level)) - 1;
  const double k_tol = 8.0 / steps * 0.5 + 8 * 1e-3, v_tol = 4.0 / steps * 0.5 + 4 * 1e-3;
  if (level == KvLevel::kInt2) {
    // int2 clips its range for the least squared error (kv_chunk_format.md): the total error is
    // at most that of the min-max range, whose half-step bound each value would meet.
    double k_err = 0, v_err = 0;
    for (size_t i = 0; i < n; ++i) {
      k_err += (k2[i] - k[i]) * (k2[i] - k[i]);
      v_err += (v2[i] - v[i]) * (v2[i] - v[i]);
    }
    EXPECT_LE(k_err, n * k_tol * k_tol);
    EXPECT_LE(v_err, n * v_tol * v_tol);
    EXPECT_LE(k_err, MinMaxSquaredError(k, layout.width(), tokens, /*per_channel=*/true));
    EXPECT_LE(v_err, MinMaxSquaredError(v, layout.width(), tokens, /*per_channel=*/false));
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    ASSERT_NEAR(k2[i], k[i], k_tol) << KvLevelName(level) << " k " << i;
    ASSERT_NEAR(v2[i], v[i], v_tol) << KvLevelName(level) << " v " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(AllLevels, KvRoundTripTest,
                         ::testing::Combine(::testing::Values(KvLevel::kF16, KvLevel::kInt8,
                                                              KvLevel::kInt4, KvLevel::kInt2),
                                            ::testing::Values(size_t{8}, size_t{64}),
                                            ::testing::Values(size_t{8}, size_t{16}, size_t{32})));

TEST(KvQuantTest, WriteTokenF16MatchesEncode) {
  const KvLayout layout{4, 8, 16};
  const size_t n = layout.width() * 16;
  auto k = testing::RandomFloats(n, 21), v = testing::RandomFloats(n, 22);
  std::vector<uint8_t> a(layout.LayerBytes(KvLevel::kF16)), b(a.size());
  EncodeKvSlice(layout, KvLevel::kF16, k.data(), v.data(), 16, a.data());
  std::vector<float> krow(layout.width());
  for (size_t t = 0; t < 16; ++t) {
    for (size_t c = 0; c < layout.width(); ++c) krow[c] = k[c * 16 + t];
    WriteTokenF16(layout, b.data(), t, krow.data(), &v[t * layout.width()]);
  }
  EXPECT_EQ(a, b);
}

TEST(KvQuantTest, ConstantRunsDecodeExactly) {
  const KvLayout layout{1, 8, 8};
  std::vector<float> k(64, 0.75f), v(64, -1.5f), k2(64), v2(64);
  for (KvLevel level : {KvLevel::kInt8, KvLevel::kInt4, KvLevel::kInt2}) {
    std::vector<uint8_t> slice(layout.LayerBytes(level));
    EncodeKvSlice(layout, level, k.data(), v.data(), 8, slice.data());
    DecodeKvSlice(layout, level, slice.data(), k2.data(), v2.data());
    EXPECT_EQ(k2, k);
    EXPECT_EQ(v2, v);
  }
}

}  // namespace
}  // namespace llms
