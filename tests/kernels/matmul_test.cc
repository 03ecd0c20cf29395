// MatMul (one token and many) / DequantizeRow against the scalar reference (weight_ref.h), for
// every weight type and every SIMD target this CPU runs (STYLE rule 20).
#include "kernels/matmul.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "formats/weight_ref.h"
#include "formats/weight_types.h"
#include "hwy/targets.h"
#include "testutil/testutil.h"

namespace llms {
namespace {

// A quantized random matrix plus its reference dequantization.
struct TestMatrix {
  std::vector<uint8_t> bytes;
  std::vector<float> decoded;  // rows x cols, as DequantizeRowRef gives them
  WeightMatrix view;
};

TestMatrix MakeMatrix(WeightType type, size_t rows, size_t cols, uint32_t seed) {
  TestMatrix m;
  const size_t row_bytes = RowBytes(type, cols);
  const std::vector<float> values = testing::RandomFloats(rows * cols, seed);
  m.bytes.resize(rows * row_bytes);
  m.decoded.resize(rows * cols);
  for (size_t r = 0; r < rows; ++r) {
    QuantizeRowRef(type, values.data() + r * cols, m.bytes.data() + r * row_bytes, cols);
    DequantizeRowRef(type, m.bytes.data() + r * row_bytes, m.decoded.data() + r * cols, cols);
  }
  m.view = WeightMatrix{type, rows, cols, m.bytes.data()};
  return m;
}

// Error bound for an f32 dot product of exactly decoded weights, summed in any order with FMA:
// every product passes through at most cols + 16 roundings (the accumulator chain, the 2-chain
// add, a log2(16)-deep lane reduction and a scalar tail), so |err| <= gamma * sum|w_i x_i| with
// gamma = k * u / (1 - k * u), u = 2^-24 (Higham, Accuracy and Stability, 3.1).
double DotTolerance(const float* w, const float* x, size_t cols) {
  const double u = std::ldexp(1.0, -24);
  const double k = static_cast<double>(cols) + 16;
  double abs_sum = 0;
  for (size_t i = 0; i < cols; ++i) abs_sum += std::fabs(double{w[i]} * x[i]);
  return k * u / (1 - k * u) * abs_sum + 1e-37;
}

// Checks one output of the int8 path (MatMulQuantizesActivations) against DotInt8Ref. Its terms
// pass through at most cols / 16 + 16 roundings (a pair's scale product and FMA, cols / 64 chain
// steps per lane, the lane reduction, the offset dot and the final subtraction), so the bound is
// gamma(cols / 16 + 16) times the sum of the terms' magnitudes. The int8 reference itself must
// lie within the activation rounding of the exact f32 product: |x - d q| <= d / 2 (plus a
// relative 1e-6 for the rounding of x * 127 / amax).
void ExpectInt8MatchesReference(WeightType type, const uint8_t* row, const float* w, const float* x,
                                size_t cols, float got) {
  double abs_sum = 0;
  const double ref = DotInt8Ref(type, row, x, cols, &abs_sum);
  const double u = std::ldexp(1.0, -24), k = static_cast<double>(cols) / 16 + 16;
  EXPECT_LE(std::fabs(got - ref), k * u / (1 - k * u) * abs_sum + 1e-37)
      << "int8 path: got " << got << " want " << ref;
  std::vector<int8_t> q(cols);
  std::vector<float> d(cols / 32);
  QuantizeActivationsRef(x, cols, q.data(), d.data());
  double exact = 0, bound = 0;
  for (size_t i = 0; i < cols; ++i) {
    exact += double{w[i]} * x[i];
    bound += std::fabs(double{w[i]}) * (0.5 * d[i / 32] + 1e-6 * std::fabs(x[i]));
  }
  EXPECT_LE(std::fabs(ref - exact), bound + DotTolerance(w, x, cols))
      << "int8 reference " << ref << " vs f32 " << exact;
}

// Checks output `got` of row r of m times x against the reference of the path this CPU takes.
void ExpectMatchesReference(const TestMatrix& m, size_t r, const float* x, float got) {
  const size_t cols = m.view.cols;
  const float* w = &m.decoded[r * cols];
  if (MatMulQuantizesActivations(m.view.type, cols)) {
    const uint8_t* row = m.bytes.data() + r * RowBytes(m.view.type, cols);
    return ExpectInt8MatchesReference(m.view.type, row, w, x, cols, got);
  }
  double ref = 0;
  for (size_t i = 0; i < cols; ++i) ref += double{w[i]} * x[i];
  EXPECT_LE(std::fabs(got - ref), DotTolerance(w, x, cols)) << "got " << got << " want " << ref;
}

std::vector<size_t> ColsFor(WeightType type) {
  switch (type) {
    case WeightType::kF32:
    case WeightType::kF16:
    case WeightType::kBF16:
      return {1, 8, 13, 32, 64, 172, 256, 512, 768};
    // 1024 and wider also take the int8 path where the CPU has it (MatMulQuantizesActivations).
    case WeightType::kQ8_0:
    case WeightType::kQ4_0:
      return {32, 64, 256, 512, 768, 1024, 1088};
    case WeightType::kQ4_K:
    case WeightType::kQ6_K:
      return {256, 512, 768, 1024, 1280};
  }
  return {};
}

constexpr size_t kRows[] = {1, 3, 7, 64, 173};
constexpr size_t kTokens[] = {1, 2, 3, 5, 8};
constexpr size_t kMaxTokens = 8;

class MatMulTest : public ::testing::TestWithParam<std::tuple<int64_t, WeightType>> {
 protected:
  void SetUp() override { hwy::SetSupportedTargetsForTest(std::get<0>(GetParam())); }
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
  WeightType type() const { return std::get<1>(GetParam()); }

  ThreadPool pool_{2};
};

// Checks MatMul for every n in kTokens, with and without the pool, against the reference, and
// that each output equals MatMul of the same token alone, bit for bit.
void CheckMatrix(const TestMatrix& m, const std::vector<float>& x, ThreadPool* pool) {
  const size_t rows = m.view.rows, cols = m.view.cols;
  std::vector<float> matvec(kMaxTokens * rows);
  for (size_t t = 0; t < kMaxTokens; ++t)
    MatMul(m.view, &x[t * cols], 1, &matvec[t * rows], nullptr);
  for (size_t t = 0; t < kMaxTokens; ++t) {
    for (size_t r = 0; r < rows; ++r) {
      ExpectMatchesReference(m, r, &x[t * cols], matvec[t * rows + r]);
      ASSERT_FALSE(::testing::Test::HasFailure()) << "token " << t << " row " << r;
    }
  }
  for (size_t n : kTokens) {
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), pool}) {
      std::vector<float> y(n * rows, -1.0f);
      MatMul(m.view, x.data(), n, y.data(), p);
      for (size_t i = 0; i < n * rows; ++i) {
        ASSERT_EQ(y[i], matvec[i]) << "n=" << n << " token " << i / rows << " row " << i % rows
                                   << (p ? " with pool" : " single thread");
      }
    }
    std::vector<float> y(rows, -1.0f);
    MatMul(m.view, x.data(), 1, y.data(), pool);
    for (size_t r = 0; r < rows; ++r)
      ASSERT_EQ(y[r], matvec[r]) << "pooled one-token MatMul row " << r;
  }
}

TEST_P(MatMulTest, MatchesReference) {
  size_t checked = 0;
  for (size_t cols : ColsFor(type())) {
    for (size_t rows : kRows) {
      SCOPED_TRACE(::testing::Message() << "rows " << rows << " cols " << cols);
      const TestMatrix m =
          MakeMatrix(type(), rows, cols, static_cast<uint32_t>(rows * 1000 + cols));
      const std::vector<float> x = testing::RandomFloats(kMaxTokens * cols, 77, -2.0f, 2.0f);
      CheckMatrix(m, x, &pool_);
      if (HasFatalFailure()) return;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u);
}

TEST_P(MatMulTest, DequantizeRowIsBitExact) {
  for (size_t cols : ColsFor(type())) {
    const TestMatrix m = MakeMatrix(type(), 7, cols, static_cast<uint32_t>(cols));
    std::vector<float> out(cols);
    for (size_t r = 0; r < m.view.rows; ++r) {
      DequantizeRow(m.view, r, out.data());
      for (size_t i = 0; i < cols; ++i) {
        ASSERT_EQ(out[i], m.decoded[r * cols + i]) << "cols " << cols << " row " << r << " i " << i;
      }
    }
  }
}

// Activations with a huge range and cancelling signs: the tolerance is relative to
// sum|w_i x_i|, not to the (near zero) result.
// 1024 columns: the int8 path on CPUs that have it, checked against its own reference.
TEST_P(MatMulTest, CancellingSums) {
  for (const size_t cols : {size_t{512}, size_t{1024}}) {
    const size_t rows = 16;
    const TestMatrix m = MakeMatrix(type(), rows, cols, 5);
    std::vector<float> x = testing::RandomFloats(cols, 6, -1.0f, 1.0f);
    for (size_t i = 0; i < cols; i += 7) x[i] *= 1e4f;
    std::vector<float> y(rows);
    MatMul(m.view, x.data(), 1, y.data(), nullptr);
    for (size_t r = 0; r < rows; ++r) {
      if (MatMulQuantizesActivations(type(), cols)) {
        ExpectMatchesReference(m, r, x.data(), y[r]);
        continue;
      }
      const double ref =
          DotRef(type(), m.bytes.data() + r * RowBytes(type(), cols), x.data(), cols);
      EXPECT_LE(std::fabs(y[r] - ref), DotTolerance(&m.decoded[r * cols], x.data(), cols))
          << "cols " << cols << " row " << r;
    }
  }
}

// The int8 path really runs where it exists, so the checks above cover it there.
TEST_P(MatMulTest, QuantizedTypesUseInt8PathOnVnniTargets) {
  const bool quantized = type() == WeightType::kQ8_0 || type() == WeightType::kQ4_0 ||
                         type() == WeightType::kQ4_K || type() == WeightType::kQ6_K;
  const bool vnni = std::get<0>(GetParam()) == HWY_AVX3_DL;
  EXPECT_EQ(MatMulQuantizesActivations(type(), 1024), quantized && vnni);
  EXPECT_FALSE(MatMulQuantizesActivations(type(), 768));  // narrow matrices stay f32
}

std::string ParamName(const ::testing::TestParamInfo<std::tuple<int64_t, WeightType>>& info) {
  return std::string(hwy::TargetName(std::get<0>(info.param))) + "_" +
         GetWeightTypeInfo(std::get<1>(info.param))->name;
}

INSTANTIATE_TEST_SUITE_P(
    AllTargets, MatMulTest,
    ::testing::Combine(::testing::ValuesIn(hwy::SupportedAndGeneratedTargets()),
                       ::testing::Values(WeightType::kF32, WeightType::kF16, WeightType::kBF16,
                                         WeightType::kQ8_0, WeightType::kQ4_0, WeightType::kQ4_K,
                                         WeightType::kQ6_K)),
    ParamName);

// Best time of `reps` runs of MatMul over every matrix in `ms`, per matrix.
double BestSecondsPerMatrix(const std::vector<TestMatrix>& ms, const float* x, size_t n, float* y,
                            ThreadPool* pool, int reps) {
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    for (const TestMatrix& m : ms) MatMul(m.view, x, n, y, pool);
    const std::chrono::duration<double> s = std::chrono::steady_clock::now() - start;
    best = std::min(best, s.count() / static_cast<double>(ms.size()));
  }
  return best;
}

// Not a test: weight throughput on the best target, printed for a human. Run with
// --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'. "dram" cycles through enough
// copies (256 MiB) that they cannot stay in the last-level cache; "l3" reuses one matrix.
TEST(MatMulBench, DISABLED_Throughput) {
  const size_t rows = 2048, cols = 5632;
  const WeightType types[] = {WeightType::kQ8_0, WeightType::kQ4_0, WeightType::kQ4_K,
                              WeightType::kQ6_K, WeightType::kF16,  WeightType::kBF16};
  const std::vector<float> x = testing::RandomFloats(cols * 8, 1);
  std::vector<float> y(rows * 8);
  for (WeightType type : types) {
    const size_t matrix_bytes = rows * RowBytes(type, cols);
    const size_t copies = std::max<size_t>(2, (size_t{256} << 20) / matrix_bytes);
    std::vector<TestMatrix> ms(1, MakeMatrix(type, rows, cols, 1));
    for (size_t i = 1; i < copies; ++i) {
      ms.push_back(ms[0]);
      ms.back().view.data = ms.back().bytes.data();
    }
    const std::vector<TestMatrix> one(ms.begin(), ms.begin() + 1);
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      for (size_t n : {size_t{1}, size_t{8}}) {
        const double dram = BestSecondsPerMatrix(ms, x.data(), n, y.data(), &pool, 5);
        const double l3 = BestSecondsPerMatrix(one, x.data(), n, y.data(), &pool, 50);
        std::printf(
            "%-5s n=%zu threads=%d: dram %7.1f us %5.1f GB/s | l3 %7.1f us %5.1f GB/s %6.1f "
            "GFLOP/s\n",
            GetWeightTypeInfo(type)->name, n, threads, dram * 1e6, matrix_bytes / dram * 1e-9,
            l3 * 1e6, matrix_bytes / l3 * 1e-9, 2.0 * rows * cols * n / l3 * 1e-9);
      }
    }
  }
}

}  // namespace
}  // namespace llms
