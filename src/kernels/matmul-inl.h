// Per-target implementation of matmul.h (Highway toggle-guarded include): one traits struct per
// weight storage type (STYLE rule 5) and row-dot kernels that are generic over the traits.
#if defined(LLMS_KERNELS_MATMUL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LLMS_KERNELS_MATMUL_INL_H_
#undef LLMS_KERNELS_MATMUL_INL_H_
#else
#define LLMS_KERNELS_MATMUL_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "base/check.h"
#include "base/thread_pool.h"
#include "formats/float16.h"
#include "formats/weight_types.h"
#include "hwy/highway.h"
#include "kernels/matmul.h"
#include "kernels/matmul_int8-inl.h"

HWY_BEFORE_NAMESPACE();
namespace llms {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 floats per vector: a Q6_K sub-block and a Q4_0 half-block are 16 values, so each
// vector of decoded weights needs one scale on every target (AVX-512 has exactly 16 lanes).
using WeightDF = hn::CappedTag<float, 16>;
using WeightVF = hn::Vec<WeightDF>;

// ---- Traits: one per storage type ----
//
// Every traits struct provides:
//   kBlockValues, kBlockBytes: one storage block. kBlockValues == 0 marks a float type: rows
//     may have any length, the kernels walk them in chunks of 2 vectors (2 * Lanes(df) values,
//     kValueBytes each) and finish with ValueAt(row, i) for the tail.
//   DecodeBlock(df, block, sink): decodes every value of one block (chunk) to f32 vectors and
//     calls sink(ofs0, w0, ofs1, w1) for each pair, where w0 holds the values at
//     [ofs0, ofs0 + Lanes(df)) of the block. The pair feeds two independent FMA chains. The
//     arithmetic is that of ggml's dequantize_row_* (no FMA contraction), so decoded weights are
//     bit-identical to DequantizeRowRef.
// Encoding is scalar-only for now (QuantizeRowRef in weight_ref.h): weights arrive encoded.

struct WeightTraitsF32 {
  static constexpr size_t kBlockValues = 0;
  static constexpr size_t kBlockBytes = 0;
  static constexpr size_t kValueBytes = 4;
  template <class DF, class Sink>
  static HWY_INLINE void DecodeBlock(DF df, const uint8_t* HWY_RESTRICT p, Sink& sink) {
    const float* f = reinterpret_cast<const float*>(p);
    const size_t N = hn::Lanes(df);
    sink(0, hn::LoadU(df, f), N, hn::LoadU(df, f + N));
  }
  static HWY_INLINE float ValueAt(const uint8_t* row, size_t i) {
    float v;
    std::memcpy(&v, row + 4 * i, 4);
    return v;
  }
};

// F16 and BF16: T is hwy::float16_t or hwy::bfloat16_t; PromoteTo is exact for both.
template <typename T, float (*kScalarToF32)(uint16_t)>
struct WeightTraitsHalf {
  static constexpr size_t kBlockValues = 0;
  static constexpr size_t kBlockBytes = 0;
  static constexpr size_t kValueBytes = 2;
  template <class DF, class Sink>
  static HWY_INLINE void DecodeBlock(DF df, const uint8_t* HWY_RESTRICT p, Sink& sink) {
    const hn::Rebind<T, DF> dh;
    const T* h = reinterpret_cast<const T*>(p);
    const size_t N = hn::Lanes(df);
    sink(0, hn::PromoteTo(df, hn::LoadU(dh, h)), N, hn::PromoteTo(df, hn::LoadU(dh, h + N)));
  }
  static HWY_INLINE float ValueAt(const uint8_t* row, size_t i) {
    uint16_t bits;
    std::memcpy(&bits, row + 2 * i, 2);
    return kScalarToF32(bits);
  }
};
using WeightTraitsF16 = WeightTraitsHalf<hwy::float16_t, F16ToF32>;
using WeightTraitsBF16 = WeightTraitsHalf<hwy::bfloat16_t, BF16ToF32>;

// Q8_0: value = qs[i] * d.
struct WeightTraitsQ8_0 {
  static constexpr size_t kBlockValues = kQK8_0;
  static constexpr size_t kBlockBytes = sizeof(BlockQ8_0);
  template <class DF, class Sink>
  static HWY_INLINE void DecodeBlock(DF df, const uint8_t* HWY_RESTRICT block, Sink& sink) {
    const hn::RebindToSigned<DF> di;
    const hn::Rebind<int8_t, DF> d8;
    const size_t N = hn::Lanes(df);
    const auto d = hn::Set(df, LoadF16Scale(block + offsetof(BlockQ8_0, d)));
    const int8_t* qs = reinterpret_cast<const int8_t*>(block + offsetof(BlockQ8_0, qs));
    for (size_t i = 0; i < kBlockValues; i += 2 * N) {
      const auto q0 = hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, qs + i)));
      const auto q1 = hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, qs + i + N)));
      sink(i, hn::Mul(q0, d), i + N, hn::Mul(q1, d));
    }
  }
};

// Q4_0: byte i holds value i (low nibble) and value i + 16 (high); value = (nibble - 8) * d.
struct WeightTraitsQ4_0 {
  static constexpr size_t kBlockValues = kQK8_0;
  static constexpr size_t kBlockBytes = sizeof(BlockQ4_0);
  template <class DF, class Sink>
  static HWY_INLINE void DecodeBlock(DF df, const uint8_t* HWY_RESTRICT block, Sink& sink) {
    const hn::RebindToSigned<DF> di;
    const hn::Rebind<uint8_t, DF> d8;
    const size_t N = hn::Lanes(df);
    const auto d = hn::Set(df, LoadF16Scale(block + offsetof(BlockQ4_0, d)));
    const auto low_mask = hn::Set(di, 0xF);
    const auto eight = hn::Set(di, 8);
    const uint8_t* qs = block + offsetof(BlockQ4_0, qs);
    for (size_t i = 0; i < kBlockValues / 2; i += N) {
      const auto bytes = hn::PromoteTo(di, hn::LoadU(d8, qs + i));
      const auto lo = hn::ConvertTo(df, hn::Sub(hn::And(bytes, low_mask), eight));
      const auto hi = hn::ConvertTo(df, hn::Sub(hn::ShiftRight<4>(bytes), eight));
      sink(i, hn::Mul(lo, d), i + kBlockValues / 2, hn::Mul(hi, d));
    }
  }
};

// Q4_K: per 64-value group p, 32 bytes whose low nibbles are sub-block 2p and high nibbles
// sub-block 2p+1; value = (d * sc) * q - dmin * m with the sub-block's 6-bit sc and m.
struct WeightTraitsQ4_K {
  static constexpr size_t kBlockValues = kQK_K;
  static constexpr size_t kBlockBytes = sizeof(BlockQ4_K);
  template <class DF, class Sink>
  static HWY_INLINE void DecodeBlock(DF df, const uint8_t* HWY_RESTRICT block, Sink& sink) {
    const hn::RebindToSigned<DF> di;
    const hn::Rebind<uint8_t, DF> d8;
    const size_t N = hn::Lanes(df);
    const float d = LoadF16Scale(block + offsetof(BlockQ4_K, d));
    const float dmin = LoadF16Scale(block + offsetof(BlockQ4_K, dmin));
    const uint8_t* scales = block + offsetof(BlockQ4_K, scales);
    const uint8_t* qs = block + offsetof(BlockQ4_K, qs);
    const auto low_mask = hn::Set(di, 0xF);
    for (int p = 0; p < 4; ++p) {
      uint8_t sc, m;
      GetScaleMinK4(2 * p, scales, &sc, &m);
      const auto d1 = hn::Set(df, d * sc), m1 = hn::Set(df, dmin * m);
      GetScaleMinK4(2 * p + 1, scales, &sc, &m);
      const auto d2 = hn::Set(df, d * sc), m2 = hn::Set(df, dmin * m);
      for (size_t l = 0; l < 32; l += N) {
        const auto bytes = hn::PromoteTo(di, hn::LoadU(d8, qs + 32 * p + l));
        const auto lo = hn::ConvertTo(df, hn::And(bytes, low_mask));
        const auto hi = hn::ConvertTo(df, hn::ShiftRight<4>(bytes));
        sink(64 * p + l, hn::Sub(hn::Mul(lo, d1), m1), 64 * p + 32 + l,
             hn::Sub(hn::Mul(hi, d2), m2));
      }
    }
  }
};

// Q6_K: per 128-value half, ql byte l holds the low 4 bits of values l (low nibble) and l+64
// (high), byte l+32 those of l+32 and l+96; qh byte l the top 2 bits of l, l+32, l+64, l+96.
// value = (d * scales[j]) * (q - 32) for 16-value sub-block j.
struct WeightTraitsQ6_K {
  static constexpr size_t kBlockValues = kQK_K;
  static constexpr size_t kBlockBytes = sizeof(BlockQ6_K);
  template <class DF, class Sink>
  static HWY_INLINE void DecodeBlock(DF df, const uint8_t* HWY_RESTRICT block, Sink& sink) {
    const hn::RebindToSigned<DF> di;
    const hn::Rebind<uint8_t, DF> d8;
    const size_t N = hn::Lanes(df);
    const float d = LoadF16Scale(block + offsetof(BlockQ6_K, d));
    const auto low_mask = hn::Set(di, 0xF), high_bits = hn::Set(di, 0x30), bias = hn::Set(di, 32);
    // (q - 32) * (d * scale), in ggml's order of operations.
    auto to_weights = [&](hn::Vec<decltype(di)> q, int8_t scale) HWY_ATTR {
      return hn::Mul(hn::ConvertTo(df, hn::Sub(q, bias)), hn::Set(df, d * scale));
    };
    for (size_t half = 0; half < 2; ++half) {
      const uint8_t* ql = block + offsetof(BlockQ6_K, ql) + 64 * half;
      const uint8_t* qh = block + offsetof(BlockQ6_K, qh) + 32 * half;
      const int8_t* sc =
          reinterpret_cast<const int8_t*>(block + offsetof(BlockQ6_K, scales)) + 8 * half;
      const size_t base = 128 * half;
      for (size_t l = 0; l < 32; l += N) {
        const size_t is = l / 16;
        const auto a = hn::PromoteTo(di, hn::LoadU(d8, ql + l));
        const auto b = hn::PromoteTo(di, hn::LoadU(d8, ql + l + 32));
        const auto h = hn::PromoteTo(di, hn::LoadU(d8, qh + l));
        // Values l and l+32 first, then l+64 and l+96: one pair live at a time keeps the
        // decode within 16 registers next to AVX2's accumulators.
        const auto q1 = hn::Or(hn::And(a, low_mask), hn::And(hn::ShiftLeft<4>(h), high_bits));
        const auto q2 = hn::Or(hn::And(b, low_mask), hn::And(hn::ShiftLeft<2>(h), high_bits));
        sink(base + l, to_weights(q1, sc[is]), base + l + 32, to_weights(q2, sc[is + 2]));
        const auto q3 = hn::Or(hn::ShiftRight<4>(a), hn::And(h, high_bits));
        const auto q4 = hn::Or(hn::ShiftRight<4>(b), hn::And(hn::ShiftRight<2>(h), high_bits));
        sink(base + l + 64, to_weights(q3, sc[is + 4]), base + l + 96, to_weights(q4, sc[is + 6]));
      }
    }
  }
};

// Calls fn(Traits()) with the traits of `type`.
template <class Fn>
HWY_INLINE void WithWeightTraits(WeightType type, const Fn& fn) {
  switch (type) {
    case WeightType::kF32:
      return fn(WeightTraitsF32());
    case WeightType::kF16:
      return fn(WeightTraitsF16());
    case WeightType::kBF16:
      return fn(WeightTraitsBF16());
    case WeightType::kQ8_0:
      return fn(WeightTraitsQ8_0());
    case WeightType::kQ4_0:
      return fn(WeightTraitsQ4_0());
    case WeightType::kQ4_K:
      return fn(WeightTraitsQ4_K());
    case WeightType::kQ6_K:
      return fn(WeightTraitsQ6_K());
  }
}

// ---- Kernels generic over the traits ----

// Values and bytes of one DecodeBlock call.
template <class Traits>
HWY_INLINE size_t ChunkValues(WeightDF df) {
  if constexpr (Traits::kBlockValues != 0) {
    return Traits::kBlockValues;
  } else {
    return 2 * hn::Lanes(df);
  }
}
template <class Traits>
HWY_INLINE size_t ChunkBytes(WeightDF df) {
  if constexpr (Traits::kBlockValues != 0) {
    return Traits::kBlockBytes;
  } else {
    return 2 * hn::Lanes(df) * Traits::kValueBytes;
  }
}

// Tokens per tile. Each token has 4 accumulators, so 4 tokens need 16 registers: fine with
// AVX-512's 32, but on 16-register targets they would spill, so those take 2 tokens.
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3
constexpr size_t kTokenTile = 2;
#else
constexpr size_t kTokenTile = 4;
#endif

// acc_t += w0 * x_t[i0] and acc'_t += w1 * x_t[i1] for the first kT tokens.
template <size_t kT>
HWY_INLINE void MulAddTokens(WeightDF df, WeightVF w0, size_t i0, WeightVF w1, size_t i1,
                             const float* HWY_RESTRICT x0, const float* HWY_RESTRICT x1,
                             const float* HWY_RESTRICT x2, const float* HWY_RESTRICT x3,
                             WeightVF& a0, WeightVF& a1, WeightVF& a2, WeightVF& a3, WeightVF& b0,
                             WeightVF& b1, WeightVF& b2, WeightVF& b3) {
  a0 = hn::MulAdd(w0, hn::LoadU(df, x0 + i0), a0);
  b0 = hn::MulAdd(w1, hn::LoadU(df, x0 + i1), b0);
  if constexpr (kT > 1) {
    a1 = hn::MulAdd(w0, hn::LoadU(df, x1 + i0), a1);
    b1 = hn::MulAdd(w1, hn::LoadU(df, x1 + i1), b1);
  }
  if constexpr (kT > 2) {
    a2 = hn::MulAdd(w0, hn::LoadU(df, x2 + i0), a2);
    b2 = hn::MulAdd(w1, hn::LoadU(df, x2 + i1), b2);
  }
  if constexpr (kT > 3) {
    a3 = hn::MulAdd(w0, hn::LoadU(df, x3 + i0), a3);
    b3 = hn::MulAdd(w1, hn::LoadU(df, x3 + i1), b3);
  }
}

// Sum of the four chains of one token, plus its scalar tail.
HWY_INLINE float ReduceChains(WeightDF df, WeightVF a, WeightVF b, WeightVF c, WeightVF e,
                              float tail) {
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a, b), hn::Add(c, e)))) + tail;
}

// out[t] = dot(row, x + t * x_stride) for t < kT: each decoded weight vector is used for kT
// tokens. Each token has 4 FMA chains: the 2 of a sink call, alternating between even and odd
// blocks, so that even MatVec (kT = 1) keeps 4 FMAs in flight instead of waiting on FMA
// latency. Token t's operations are the same whatever kT is, so batching never changes a result.
template <class Traits, size_t kT>
HWY_INLINE void DotRowTokens(const uint8_t* HWY_RESTRICT row, size_t cols,
                             const float* HWY_RESTRICT x, size_t x_stride,
                             float* HWY_RESTRICT out) {
  static_assert(1 <= kT && kT <= 4, "token tile is 1..4");
  const WeightDF df;
  const WeightVF zero = hn::Zero(df);
  WeightVF a0 = zero, a1 = zero, a2 = zero, a3 = zero, b0 = zero, b1 = zero, b2 = zero, b3 = zero;
  WeightVF c0 = zero, c1 = zero, c2 = zero, c3 = zero, e0 = zero, e1 = zero, e2 = zero, e3 = zero;
  const float* x0 = x;
  const float* x1 = kT > 1 ? x + x_stride : x;
  const float* x2 = kT > 2 ? x + 2 * x_stride : x;
  const float* x3 = kT > 3 ? x + 3 * x_stride : x;
  const size_t chunk_values = ChunkValues<Traits>(df);
  const size_t chunk_bytes = ChunkBytes<Traits>(df);
  const size_t num_chunks = cols / chunk_values;
  size_t base = 0;  // first value of the block being decoded
  auto even = [&](size_t ofs0, WeightVF w0, size_t ofs1, WeightVF w1) HWY_ATTR {
    MulAddTokens<kT>(df, w0, base + ofs0, w1, base + ofs1, x0, x1, x2, x3, a0, a1, a2, a3, b0, b1,
                     b2, b3);
  };
  auto odd = [&](size_t ofs0, WeightVF w0, size_t ofs1, WeightVF w1) HWY_ATTR {
    MulAddTokens<kT>(df, w0, base + ofs0, w1, base + ofs1, x0, x1, x2, x3, c0, c1, c2, c3, e0, e1,
                     e2, e3);
  };
  size_t c = 0;
  for (; c + 2 <= num_chunks; c += 2) {
    base = c * chunk_values;
    Traits::DecodeBlock(df, row + c * chunk_bytes, even);
    base += chunk_values;
    Traits::DecodeBlock(df, row + (c + 1) * chunk_bytes, odd);
  }
  if (c < num_chunks) {
    base = c * chunk_values;
    Traits::DecodeBlock(df, row + c * chunk_bytes, even);
  }
  float tail[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  if constexpr (Traits::kBlockValues == 0) {
    for (size_t i = num_chunks * chunk_values; i < cols; ++i) {
      const float w = Traits::ValueAt(row, i);
      tail[0] += w * x0[i];
      if constexpr (kT > 1) tail[1] += w * x1[i];
      if constexpr (kT > 2) tail[2] += w * x2[i];
      if constexpr (kT > 3) tail[3] += w * x3[i];
    }
  }
  out[0] = ReduceChains(df, a0, b0, c0, e0, tail[0]);
  if constexpr (kT > 1) out[1] = ReduceChains(df, a1, b1, c1, e1, tail[1]);
  if constexpr (kT > 2) out[2] = ReduceChains(df, a2, b2, c2, e2, tail[2]);
  if constexpr (kT > 3) out[3] = ReduceChains(df, a3, b3, c3, e3, tail[3]);
}

// Row ranges are multiples of 16 rows: 16 floats of y fill one 64-byte cache line, so two
// threads never write the same line.
constexpr size_t kRowGrain = 16;
// About 4 ranges per thread: enough for the pool's dynamic claiming to even out a thread that
// starts late, few enough that each range reuses its activation tiles over many rows.
constexpr size_t kRangesPerThread = 4;
// Fewer multiply-adds than this per range (a few microseconds) do not repay waking a thread.
constexpr size_t kMinMulAddsPerRange = size_t{1} << 15;
// Weight bytes decoded for every token tile while they stay in L2: a quarter of a 1 MiB L2,
// leaving room for the activation tile and the outputs.
constexpr size_t kWeightBlockBytes = size_t{256} << 10;

// Runs fn(begin, end) over row ranges covering [0, w.rows), on the pool if there is enough
// work for more than one range.
template <class Fn>
HWY_INLINE void ForRowRanges(const WeightMatrix& w, size_t n, ThreadPool* pool, const Fn& fn) {
  const size_t threads = pool == nullptr ? 1 : static_cast<size_t>(pool->num_threads());
  const size_t mul_adds_per_row = std::max<size_t>(w.cols * n, 1);
  size_t grain = std::max(
      {kRowGrain, kMinMulAddsPerRange / mul_adds_per_row, w.rows / (kRangesPerThread * threads)});
  grain = (grain + kRowGrain - 1) / kRowGrain * kRowGrain;
  if (threads == 1 || w.rows <= grain) return fn(size_t{0}, w.rows);
  pool->ParallelFor(w.rows, grain, fn);
}

// Y rows [r0, r1) for tokens [t0, t0 + kT).
template <class Traits, size_t kT>
HWY_INLINE void MatMulTile(const WeightMatrix& w, const float* HWY_RESTRICT x, size_t t0,
                           float* HWY_RESTRICT y, size_t r0, size_t r1) {
  const size_t row_bytes = RowBytes(w.type, w.cols);
  float out[kT];
  for (size_t r = r0; r < r1; ++r) {
    DotRowTokens<Traits, kT>(w.data + r * row_bytes, w.cols, x + t0 * w.cols, w.cols, out);
    for (size_t t = 0; t < kT; ++t) y[(t0 + t) * w.rows + r] = out[t];
  }
}

// All tokens for rows [r0, r1), in blocks of rows that stay in L2 across the token tiles.
template <class Traits>
HWY_NOINLINE void MatMulRows(const WeightMatrix& w, const float* HWY_RESTRICT x, size_t n,
                             float* HWY_RESTRICT y, size_t r0, size_t r1) {
  const size_t row_bytes = RowBytes(w.type, w.cols);
  const size_t block_rows = std::max<size_t>(1, kWeightBlockBytes / std::max<size_t>(row_bytes, 1));
  for (size_t rb = r0; rb < r1; rb += block_rows) {
    const size_t re = std::min(r1, rb + block_rows);
    size_t t = 0;
    for (; t + kTokenTile <= n; t += kTokenTile) {
      MatMulTile<Traits, kTokenTile>(w, x, t, y, rb, re);
    }
    // Fewer than kTokenTile tokens left; only tile sizes below kTokenTile are instantiated.
    const size_t left = n - t;
    if constexpr (kTokenTile > 3) {
      if (left == 3) MatMulTile<Traits, 3>(w, x, t, y, rb, re);
    }
    if constexpr (kTokenTile > 2) {
      if (left == 2) MatMulTile<Traits, 2>(w, x, t, y, rb, re);
    }
    if (left == 1) MatMulTile<Traits, 1>(w, x, t, y, rb, re);
  }
}

HWY_NOINLINE void MatMulImpl(const WeightMatrix& w, const float* HWY_RESTRICT x, size_t n,
                             float* HWY_RESTRICT y, ThreadPool* pool) {
  LLMS_DCHECK(w.cols == 0 || RowBytes(w.type, w.cols) != 0);
#if HWY_TARGET == HWY_AVX3_DL
  if (UsesInt8Path(w.type, w.cols)) {
    // The calling thread's quantized activations; workers read them while it waits in the
    // pool, so one buffer per calling thread suffices and is reused across calls. Lambdas do
    // not capture a thread_local (a worker would see its own, empty one), hence `xq`.
    thread_local Int8Rows calling_thread_rows;
    WithInt8Traits(w, x, n, &calling_thread_rows, [&](auto traits) HWY_ATTR {
      using Traits = decltype(traits);
      const Int8Rows& xq = calling_thread_rows;
      ForRowRanges(w, n, pool, [&](size_t begin, size_t end) HWY_ATTR {
        Int8MatMulRows<Traits>(w, xq, n, y, begin, end, kWeightBlockBytes);
      });
    });
    return;
  }
#endif
  WithWeightTraits(w.type, [&](auto traits) HWY_ATTR {
    using Traits = decltype(traits);
    ForRowRanges(w, n, pool, [&](size_t begin, size_t end) HWY_ATTR {
      MatMulRows<Traits>(w, x, n, y, begin, end);
    });
  });
}

HWY_NOINLINE bool QuantizesActivationsImpl(WeightType type, size_t cols) {
  return UsesInt8Path(type, cols);
}

HWY_NOINLINE void DequantizeRowImpl(const WeightMatrix& w, size_t row, float* HWY_RESTRICT out) {
  LLMS_DCHECK(row < w.rows);
  WithWeightTraits(w.type, [&](auto traits) HWY_ATTR {
    using Traits = decltype(traits);
    const WeightDF df;
    const uint8_t* p = w.data + row * RowBytes(w.type, w.cols);
    const size_t chunk_values = ChunkValues<Traits>(df);
    const size_t num_chunks = w.cols / chunk_values;
    for (size_t c = 0; c < num_chunks; ++c) {
      float* dst = out + c * chunk_values;
      auto sink = [&](size_t ofs0, WeightVF w0, size_t ofs1, WeightVF w1) HWY_ATTR {
        hn::StoreU(w0, df, dst + ofs0);
        hn::StoreU(w1, df, dst + ofs1);
      };
      Traits::DecodeBlock(df, p + c * ChunkBytes<Traits>(df), sink);
    }
    if constexpr (Traits::kBlockValues == 0) {
      for (size_t i = num_chunks * chunk_values; i < w.cols; ++i) out[i] = Traits::ValueAt(p, i);
    }
  });
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace llms
HWY_AFTER_NAMESPACE();

#endif  // LLMS_KERNELS_MATMUL_INL_H_
