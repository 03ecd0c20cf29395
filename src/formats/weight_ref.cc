#include "formats/weight_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "formats/float16.h"

namespace llms {
namespace {

// Blocks are copied out with memcpy: rows of 18- or 34-byte blocks leave the f16 fields
// unaligned, which the structs' alignment would otherwise promise.
template <typename Block>
Block ReadBlock(const uint8_t* row, size_t i) {
  Block b;
  std::memcpy(&b, row + i * sizeof(Block), sizeof(Block));
  return b;
}
template <typename Block>
void WriteBlock(const Block& b, uint8_t* row, size_t i) {
  std::memcpy(row + i * sizeof(Block), &b, sizeof(Block));
}

int NearestInt(float v) { return static_cast<int>(std::lround(v)); }

// ---- Dequantize (ggml dequantize_row_*) ----

void DequantizeQ8_0(const uint8_t* row, float* y, size_t n) {
  for (size_t i = 0; i < n / kQK8_0; ++i) {
    const BlockQ8_0 b = ReadBlock<BlockQ8_0>(row, i);
    const float d = F16ToF32(b.d);
    for (int j = 0; j < kQK8_0; ++j) y[i * kQK8_0 + j] = b.qs[j] * d;
  }
}

void DequantizeQ4_0(const uint8_t* row, float* y, size_t n) {
  for (size_t i = 0; i < n / kQK8_0; ++i) {
    const BlockQ4_0 b = ReadBlock<BlockQ4_0>(row, i);
    const float d = F16ToF32(b.d);
    for (int j = 0; j < kQK8_0 / 2; ++j) {
      const int x0 = (b.qs[j] & 0x0F) - 8;
      const int x1 = (b.qs[j] >> 4) - 8;
      y[i * kQK8_0 + j] = x0 * d;
      y[i * kQK8_0 + j + kQK8_0 / 2] = x1 * d;
    }
  }
}

void DequantizeQ4_K(const uint8_t* row, float* y, size_t n) {
  for (size_t i = 0; i < n / kQK_K; ++i) {
    const BlockQ4_K b = ReadBlock<BlockQ4_K>(row, i);
    const float d = F16ToF32(b.d);
    const float min = F16ToF32(b.dmin);
    const uint8_t* q = b.qs;
    int is = 0;
    for (int j = 0; j < kQK_K; j += 64) {
      uint8_t sc, m;
      GetScaleMinK4(is + 0, b.scales, &sc, &m);
      const float d1 = d * sc;
      const float m1 = min * m;
      GetScaleMinK4(is + 1, b.scales, &sc, &m);
      const float d2 = d * sc;
      const float m2 = min * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
      q += 32;
      is += 2;
    }
  }
}

void DequantizeQ6_K(const uint8_t* row, float* y, size_t n) {
  for (size_t i = 0; i < n / kQK_K; ++i) {
    const BlockQ6_K b = ReadBlock<BlockQ6_K>(row, i);
    const float d = F16ToF32(b.d);
    const uint8_t* ql = b.ql;
    const uint8_t* qh = b.qh;
    const int8_t* sc = b.scales;
    for (int half = 0; half < 2; ++half) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int8_t q1 = static_cast<int8_t>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int8_t q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int8_t q3 = static_cast<int8_t>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int8_t q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
      y += 128;
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

// ---- Quantize ----

// ggml quantize_row_q8_0_ref.
void QuantizeQ8_0(const float* x, uint8_t* row, size_t n) {
  for (size_t i = 0; i < n / kQK8_0; ++i) {
    const float* xb = x + i * kQK8_0;
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 b;
    b.d = F32ToF16(d);
    for (int j = 0; j < kQK8_0; ++j) b.qs[j] = static_cast<int8_t>(std::round(xb[j] * id));
    WriteBlock(b, row, i);
  }
}

// ggml quantize_row_q4_0_ref: the scale maps the value of largest magnitude to -8.
void QuantizeQ4_0(const float* x, uint8_t* row, size_t n) {
  for (size_t i = 0; i < n / kQK8_0; ++i) {
    const float* xb = x + i * kQK8_0;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) {
      if (amax < std::fabs(xb[j])) {
        amax = std::fabs(xb[j]);
        max = xb[j];
      }
    }
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_0 b;
    b.d = F32ToF16(d);
    for (int j = 0; j < kQK8_0 / 2; ++j) {
      const float x0 = xb[j] * id;
      const float x1 = xb[kQK8_0 / 2 + j] * id;
      const uint8_t xi0 = std::min<uint8_t>(15, static_cast<int8_t>(x0 + 8.5f));
      const uint8_t xi1 = std::min<uint8_t>(15, static_cast<int8_t>(x1 + 8.5f));
      b.qs[j] = static_cast<uint8_t>(xi0 | (xi1 << 4));
    }
    WriteBlock(b, row, i);
  }
}

// Packs sub-block j's 6-bit scale and min the way GetScaleMinK4 unpacks them.
void PackScaleMinK4(int j, int ls, int lm, uint8_t* scales) {
  if (j < 4) {
    scales[j] = static_cast<uint8_t>(ls);
    scales[j + 4] = static_cast<uint8_t>(lm);
  } else {
    scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
    scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
    scales[j - 0] |= static_cast<uint8_t>((lm >> 4) << 6);
  }
}

// Per sub-block of 32: min clamped to <= 0 (the format can only subtract a min), scale =
// range / 15. The 6-bit sub-block scales are relative to the largest; nibbles are computed from
// the decoded (f16-rounded) scales so that rounding there does not bias the values.
void QuantizeQ4_KBlock(const float* x, BlockQ4_K* b) {
  float scale[8], neg_min[8], max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    float lo = 0.0f, hi = x[32 * j];
    for (int l = 0; l < 32; ++l) {
      lo = std::min(lo, x[32 * j + l]);
      hi = std::max(hi, x[32 * j + l]);
    }
    scale[j] = std::max(hi - lo, 0.0f) / 15;
    neg_min[j] = -lo;
    max_scale = std::max(max_scale, scale[j]);
    max_min = std::max(max_min, neg_min[j]);
  }
  b->d = F32ToF16(max_scale / 63);
  b->dmin = F32ToF16(max_min / 63);
  const float d = F16ToF32(b->d), dmin = F16ToF32(b->dmin);
  std::memset(b->scales, 0, sizeof(b->scales));
  for (int j = 0; j < 8; ++j) {
    const int ls = d > 0 ? std::clamp(NearestInt(scale[j] / d), 0, 63) : 0;
    const int lm = dmin > 0 ? std::clamp(NearestInt(neg_min[j] / dmin), 0, 63) : 0;
    PackScaleMinK4(j, ls, lm, b->scales);
    const float d1 = d * ls, m1 = dmin * lm;
    for (int l = 0; l < 32; ++l) {
      const int q = d1 > 0 ? std::clamp(NearestInt((x[32 * j + l] + m1) / d1), 0, 15) : 0;
      uint8_t& byte = b->qs[32 * (j / 2) + l];
      byte = (j % 2 == 0) ? static_cast<uint8_t>((byte & 0xF0) | q)
                          : static_cast<uint8_t>((byte & 0x0F) | (q << 4));
    }
  }
}

// Per sub-block of 16: scale = absmax / 31, so values land in [-31, 31] of the 6-bit range
// [-32, 31]; the 8-bit sub-block scales are relative to the largest.
void QuantizeQ6_KBlock(const float* x, BlockQ6_K* b) {
  float scale[16], max_scale = 0.0f;
  for (int j = 0; j < 16; ++j) {
    float amax = 0.0f;
    for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(x[16 * j + l]));
    scale[j] = amax / 31;
    max_scale = std::max(max_scale, scale[j]);
  }
  b->d = F32ToF16(max_scale / 127);
  const float d = F16ToF32(b->d);
  uint8_t L[kQK_K];
  for (int j = 0; j < 16; ++j) {
    const int sc = d > 0 ? std::clamp(NearestInt(scale[j] / d), 0, 127) : 0;
    b->scales[j] = static_cast<int8_t>(sc);
    const float d1 = d * sc;
    for (int l = 0; l < 16; ++l) {
      const int q = d1 > 0 ? std::clamp(NearestInt(x[16 * j + l] / d1), -32, 31) : 0;
      L[16 * j + l] = static_cast<uint8_t>(q + 32);
    }
  }
  // ggml's packing: per 128-value half, ql holds low nibbles of values l and l+64 (byte l) and
  // of l+32 and l+96 (byte l+32); qh byte l holds the top 2 bits of l, l+32, l+64, l+96.
  for (int half = 0; half < 2; ++half) {
    const uint8_t* Lh = L + 128 * half;
    uint8_t* ql = b->ql + 64 * half;
    uint8_t* qh = b->qh + 32 * half;
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<uint8_t>((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
      qh[l] = static_cast<uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                   ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
    }
  }
}

template <typename Block, void (*QuantizeBlock)(const float*, Block*)>
void QuantizeK(const float* x, uint8_t* row, size_t n) {
  for (size_t i = 0; i < n / kQK_K; ++i) {
    Block b;
    std::memset(&b, 0, sizeof(b));
    QuantizeBlock(x + i * kQK_K, &b);
    WriteBlock(b, row, i);
  }
}

[[maybe_unused]] bool IsWholeBlocks(WeightType type, size_t n) {
  return n == 0 || RowBytes(type, n) != 0;
}

// Writes the codes u and per-16-value scales s and offsets c of the int8 path (value = s*u - c).
void DecomposeRow(WeightType type, const uint8_t* row, size_t n, int* u, float* s, float* c) {
  switch (type) {
    case WeightType::kQ8_0:
      for (size_t i = 0; i < n / kQK8_0; ++i) {
        const BlockQ8_0 b = ReadBlock<BlockQ8_0>(row, i);
        for (int j = 0; j < kQK8_0; ++j) u[i * kQK8_0 + j] = b.qs[j] + 128;
        s[2 * i] = s[2 * i + 1] = F16ToF32(b.d);
        c[2 * i] = c[2 * i + 1] = 128.0f * F16ToF32(b.d);
      }
      return;
    case WeightType::kQ4_0:
      for (size_t i = 0; i < n / kQK8_0; ++i) {
        const BlockQ4_0 b = ReadBlock<BlockQ4_0>(row, i);
        for (int j = 0; j < kQK8_0 / 2; ++j) {
          u[i * kQK8_0 + j] = b.qs[j] & 0x0F;
          u[i * kQK8_0 + j + kQK8_0 / 2] = b.qs[j] >> 4;
        }
        s[2 * i] = s[2 * i + 1] = F16ToF32(b.d);
        c[2 * i] = c[2 * i + 1] = 8.0f * F16ToF32(b.d);
      }
      return;
    case WeightType::kQ4_K:
      for (size_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ4_K b = ReadBlock<BlockQ4_K>(row, i);
        for (int j = 0; j < 8; ++j) {
          uint8_t sc, m;
          GetScaleMinK4(j, b.scales, &sc, &m);
          const size_t g = i * 16 + 2 * j;
          s[g] = s[g + 1] = F16ToF32(b.d) * sc;
          c[g] = c[g + 1] = F16ToF32(b.dmin) * m;
          for (int l = 0; l < 32; ++l) {
            const uint8_t q = b.qs[32 * (j / 2) + l];
            u[i * kQK_K + 32 * j + l] = j % 2 == 0 ? q & 0x0F : q >> 4;
          }
        }
      }
      return;
    case WeightType::kQ6_K:
      for (size_t i = 0; i < n / kQK_K; ++i) {
        const BlockQ6_K b = ReadBlock<BlockQ6_K>(row, i);
        for (int j = 0; j < 16; ++j) {
          s[i * 16 + j] = F16ToF32(b.d) * b.scales[j];
          c[i * 16 + j] = 32.0f * s[i * 16 + j];
        }
        for (int half = 0; half < 2; ++half) {
          const uint8_t* ql = b.ql + 64 * half;
          const uint8_t* qh = b.qh + 32 * half;
          int* y = u + i * kQK_K + 128 * half;
          for (int l = 0; l < 32; ++l) {
            y[l + 0] = (ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4);
            y[l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
            y[l + 64] = (ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4);
            y[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
          }
        }
      }
      return;
    default:
      LLMS_DCHECK(false);
  }
}

}  // namespace

void QuantizeActivationsRef(const float* x, size_t n, int8_t* q, float* d) {
  for (size_t b = 0; b < n / 32; ++b) {
    float amax = 0.0f;
    for (size_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[32 * b + i]));
    d[b] = amax / 127.0f;
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (size_t i = 0; i < 32; ++i) {
      q[32 * b + i] = static_cast<int8_t>(std::nearbyint(x[32 * b + i] * inv));
    }
  }
}

double DotInt8Ref(WeightType type, const uint8_t* row, const float* x, size_t n, double* abs_sum) {
  std::vector<int8_t> q(n);
  std::vector<float> d(n / 32), s(n / 16), c(n / 16);
  std::vector<int> u(n);
  QuantizeActivationsRef(x, n, q.data(), d.data());
  DecomposeRow(type, row, n, u.data(), s.data(), c.data());
  double sum = 0.0, abs = 0.0;
  for (size_t g = 0; g < n / 16; ++g) {
    int64_t uq = 0, qsum = 0;
    for (size_t i = 16 * g; i < 16 * g + 16; ++i) {
      uq += int64_t{u[i]} * q[i];
      qsum += q[i];
    }
    const double main = double{s[g]} * d[g / 2] * static_cast<double>(uq);
    const double offset = double{c[g]} * d[g / 2] * static_cast<double>(qsum);
    sum += main - offset;
    abs += std::fabs(main) + std::fabs(offset);
  }
  *abs_sum = abs;
  return sum;
}

void DequantizeRowRef(WeightType type, const uint8_t* row, float* out, size_t n) {
  LLMS_DCHECK(IsWholeBlocks(type, n));
  switch (type) {
    case WeightType::kF32:
      std::memcpy(out, row, n * sizeof(float));
      return;
    case WeightType::kF16:
    case WeightType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t bits;
        std::memcpy(&bits, row + 2 * i, 2);
        out[i] = type == WeightType::kF16 ? F16ToF32(bits) : BF16ToF32(bits);
      }
      return;
    case WeightType::kQ8_0:
      return DequantizeQ8_0(row, out, n);
    case WeightType::kQ4_0:
      return DequantizeQ4_0(row, out, n);
    case WeightType::kQ4_K:
      return DequantizeQ4_K(row, out, n);
    case WeightType::kQ6_K:
      return DequantizeQ6_K(row, out, n);
  }
}

void QuantizeRowRef(WeightType type, const float* in, uint8_t* out, size_t n) {
  LLMS_DCHECK(IsWholeBlocks(type, n));
  switch (type) {
    case WeightType::kF32:
      std::memcpy(out, in, n * sizeof(float));
      return;
    case WeightType::kF16:
    case WeightType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t bits = type == WeightType::kF16 ? F32ToF16(in[i]) : F32ToBF16(in[i]);
        std::memcpy(out + 2 * i, &bits, 2);
      }
      return;
    case WeightType::kQ8_0:
      return QuantizeQ8_0(in, out, n);
    case WeightType::kQ4_0:
      return QuantizeQ4_0(in, out, n);
    case WeightType::kQ4_K:
      return QuantizeK<BlockQ4_K, QuantizeQ4_KBlock>(in, out, n);
    case WeightType::kQ6_K:
      return QuantizeK<BlockQ6_K, QuantizeQ6_KBlock>(in, out, n);
  }
}

double DotRef(WeightType type, const uint8_t* row, const float* x, size_t n) {
  std::vector<float> w(n);
  DequantizeRowRef(type, row, w.data(), n);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += static_cast<double>(w[i]) * x[i];
  return sum;
}

}  // namespace llms
