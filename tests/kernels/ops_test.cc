// Ops against plain scalar references (llama2.c style), on every SIMD target.
#include "kernels/ops.h"

#include <cmath>
#include <vector>

#include "testutil/testutil.h"

namespace llms {
namespace {

using testing::ForEachTarget;
using testing::MaxRelativeError;
using testing::RandomFloats;

constexpr size_t kSizes[] = {1, 7, 8, 16, 64, 100, 172, 2048};

TEST(OpsTest, RMSNormMatchesScalar) {
  ForEachTarget([](const char*) {
    for (size_t n : kSizes) {
      auto x = RandomFloats(n, 1, -3, 3), w = RandomFloats(n, 2);
      std::vector<float> out(n), ref(n);
      double ss = 0;
      for (float v : x) ss += static_cast<double>(v) * v;
      const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
      for (size_t i = 0; i < n; ++i) ref[i] = static_cast<float>(x[i] * inv * w[i]);
      RMSNorm(x.data(), w.data(), n, 1e-5f, out.data());
      EXPECT_LT(MaxRelativeError(out.data(), ref.data(), n), 1e-5) << "n=" << n;
    }
  });
}

TEST(OpsTest, SoftmaxMatchesScalar) {
  ForEachTarget([](const char*) {
    for (size_t n : kSizes) {
      auto x = RandomFloats(n, 3, -20, 20);
      std::vector<float> ref(n);
      double maxv = x[0], sum = 0;
      for (float v : x) maxv = std::max<double>(maxv, v);
      for (float v : x) sum += std::exp(v - maxv);
      for (size_t i = 0; i < n; ++i) ref[i] = static_cast<float>(std::exp(x[i] - maxv) / sum);
      Softmax(x.data(), n);
      EXPECT_LT(MaxRelativeError(x.data(), ref.data(), n), 1e-5) << "n=" << n;
    }
  });
}

TEST(OpsTest, SwiGLUMatchesScalar) {
  ForEachTarget([](const char*) {
    for (size_t n : kSizes) {
      auto g = RandomFloats(n, 4, -8, 8), u = RandomFloats(n, 5);
      std::vector<float> ref(n);
      for (size_t i = 0; i < n; ++i)
        ref[i] = static_cast<float>(g[i] / (1 + std::exp(-double{g[i]})) * u[i]);
      SwiGLU(g.data(), u.data(), n);
      EXPECT_LT(MaxRelativeError(g.data(), ref.data(), n), 1e-5) << "n=" << n;
    }
  });
}

TEST(OpsTest, DotMatchesScalar) {
  ForEachTarget([](const char*) {
    for (size_t n : kSizes) {
      auto x = RandomFloats(n, 6), y = RandomFloats(n, 7);
      double ref = 0, norm = 0;
      for (size_t i = 0; i < n; ++i) {
        ref += static_cast<double>(x[i]) * y[i];
        norm += std::fabs(static_cast<double>(x[i]) * y[i]);
      }
      EXPECT_NEAR(Dot(x.data(), y.data(), n), ref, 1e-6 * norm + 1e-7) << "n=" << n;
    }
  });
}

TEST(OpsTest, RopeRotatesAdjacentPairs) {
  const size_t head_dim = 8, heads = 3;
  std::vector<float> freq(head_dim / 2);
  RopeFrequencies(head_dim, 10000.0f, 2.0f, freq.data());
  for (size_t i = 0; i < head_dim / 2; ++i) {
    EXPECT_FLOAT_EQ(freq[i], static_cast<float>(std::pow(10000.0, -2.0 * i / head_dim) / 2.0));
  }
  auto x = RandomFloats(heads * head_dim, 8);
  auto ref = x;
  const float pos = 37;
  Rope(x.data(), heads, head_dim, pos, freq.data());
  for (size_t h = 0; h < heads; ++h) {
    for (size_t i = 0; i < head_dim / 2; ++i) {
      const double a = ref[h * head_dim + 2 * i], b = ref[h * head_dim + 2 * i + 1];
      const double angle = pos * static_cast<double>(freq[i]);
      EXPECT_NEAR(x[h * head_dim + 2 * i], a * std::cos(angle) - b * std::sin(angle), 1e-6);
      EXPECT_NEAR(x[h * head_dim + 2 * i + 1], a * std::sin(angle) + b * std::cos(angle), 1e-6);
    }
  }
}

}  // namespace
}  // namespace llms
