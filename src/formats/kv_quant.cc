#include "formats/kv_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "formats/float16.h"

namespace llms {
namespace {

QuantParams LoadParams(const uint8_t* p) {
  QuantParams q;
  std::memcpy(&q, p, sizeof(q));
  return q;
}

// f16-rounded params for the range [lo, hi] in 2^bits - 1 steps.
QuantParams RangeParams(float lo, float hi, float qmax) {
  return QuantParams{F32ToF16((hi - lo) / qmax), F32ToF16(lo)};
}

// Squared error of quantizing the `valid` values against `params`.
double SquaredError(const float* x, size_t stride, size_t valid, float qmax, QuantParams params) {
  const float scale = F16ToF32(params.scale), minv = F16ToF32(params.min);
  const float inv = scale > 0 ? 1.0f / scale : 0.0f;
  double sum = 0;
  for (size_t i = 0; i < valid; ++i) {
    const float q = std::clamp(std::nearbyint((x[i * stride] - minv) * inv), 0.0f, qmax);
    const double d = static_cast<double>(scale * q + minv) - x[i * stride];
    sum += d * d;
  }
  return sum;
}

// The int2 range: with four levels, the min-max range spends them on the extremes, so the range
// is shrunk from either end (by 0-20% of it, in 5% steps) to the one with the least squared
// error. The min-max range is a candidate, so the error is never above it. On stories260K this
// cut the loss increase of uniform int2 from 2.9% to 2.0% (compression_accuracy_test).
QuantParams ClippedParams(const float* x, size_t stride, size_t valid, float lo, float hi,
                          float qmax) {
  QuantParams best = RangeParams(lo, hi, qmax);
  double best_error = SquaredError(x, stride, valid, qmax, best);
  const float range = hi - lo;
  for (int a = 0; a <= 4; ++a) {
    for (int b = 0; b <= 4; ++b) {
      if (a == 0 && b == 0) continue;
      const QuantParams p = RangeParams(lo + 0.05f * a * range, hi - 0.05f * b * range, qmax);
      const double error = SquaredError(x, stride, valid, qmax, p);
      if (error < best_error) {
        best_error = error;
        best = p;
      }
    }
  }
  return best;
}

// Chooses an asymmetric range for `n` values with stride, quantizes them into `run` and returns
// the params. The params are rounded to f16 first and the values quantized against the rounded
// ones, so decode(encode(x)) is as close as f16 params allow.
QuantParams QuantizeRun(const float* x, size_t stride, size_t n, size_t valid, int bits,
                        uint8_t* run) {
  float lo = 0, hi = 0;
  if (valid > 0) {
    lo = hi = x[0];
    for (size_t i = 1; i < valid; ++i) {
      lo = std::min(lo, x[i * stride]);
      hi = std::max(hi, x[i * stride]);
    }
  }
  const float qmax = static_cast<float>((1 << bits) - 1);
  const QuantParams params = bits == 2 && valid > 2 ? ClippedParams(x, stride, valid, lo, hi, qmax)
                                                    : RangeParams(lo, hi, qmax);
  const float scale = F16ToF32(params.scale);
  const float minv = F16ToF32(params.min);
  const float inv = scale > 0 ? 1.0f / scale : 0.0f;
  for (size_t i = 0; i < n; ++i) {
    float q = i < valid ? std::nearbyint((x[i * stride] - minv) * inv) : 0.0f;
    q = std::clamp(q, 0.0f, qmax);
    PackValue(run, i, bits, static_cast<uint32_t>(q));
  }
  return params;
}

void DecodeRun(const uint8_t* run, size_t n, int bits, QuantParams params, float* out,
               size_t stride) {
  const float scale = F16ToF32(params.scale);
  const float minv = F16ToF32(params.min);
  for (size_t i = 0; i < n; ++i) {
    out[i * stride] = scale * static_cast<float>(UnpackValue(run, i, bits)) + minv;
  }
}

}  // namespace

void DecodeKvSlice(const KvLayout& layout, KvLevel level, const uint8_t* slice, float* k,
                   float* v) {
  const size_t width = layout.width(), tokens = layout.chunk_tokens;
  if (level == KvLevel::kF16) {
    const uint8_t* vbase = slice + layout.VValuesOffset(level);
    for (size_t i = 0; i < width * tokens; ++i) {
      uint16_t h;
      std::memcpy(&h, slice + 2 * i, 2);
      k[i] = F16ToF32(h);
      std::memcpy(&h, vbase + 2 * i, 2);
      v[i] = F16ToF32(h);
    }
    return;
  }
  const int bits = KvLevelBits(level);
  const size_t k_run = tokens * static_cast<size_t>(bits) / 8;
  for (size_t c = 0; c < width; ++c) {
    const QuantParams p = LoadParams(slice + c * sizeof(QuantParams));
    DecodeRun(slice + layout.KValuesOffset(level) + c * k_run, tokens, bits, p, k + c * tokens, 1);
  }
  const size_t group = layout.v_group(), groups = width / group;
  const size_t v_row = width * static_cast<size_t>(bits) / 8;
  const uint8_t* vparams = slice + layout.VParamsOffset(level);
  const uint8_t* vvalues = slice + layout.VValuesOffset(level);
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t g = 0; g < groups; ++g) {
      const QuantParams p = LoadParams(vparams + (t * groups + g) * sizeof(QuantParams));
      const uint8_t* run = vvalues + t * v_row + g * group * static_cast<size_t>(bits) / 8;
      DecodeRun(run, group, bits, p, v + t * width + g * group, 1);
    }
  }
}

void EncodeKvSlice(const KvLayout& layout, KvLevel level, const float* k, const float* v,
                   size_t valid_tokens, uint8_t* dst) {
  const size_t width = layout.width(), tokens = layout.chunk_tokens;
  std::memset(dst, 0, layout.LayerBytes(level));
  if (level == KvLevel::kF16) {
    uint8_t* vbase = dst + layout.VValuesOffset(level);
    for (size_t i = 0; i < width * tokens; ++i) {
      const uint16_t hk = F32ToF16(k[i]), hv = F32ToF16(v[i]);
      std::memcpy(dst + 2 * i, &hk, 2);
      std::memcpy(vbase + 2 * i, &hv, 2);
    }
    return;
  }
  const int bits = KvLevelBits(level);
  const size_t k_run = tokens * static_cast<size_t>(bits) / 8;
  for (size_t c = 0; c < width; ++c) {
    const QuantParams p = QuantizeRun(k + c * tokens, 1, tokens, valid_tokens, bits,
                                      dst + layout.KValuesOffset(level) + c * k_run);
    std::memcpy(dst + c * sizeof(QuantParams), &p, sizeof(p));
  }
  const size_t group = layout.v_group(), groups = width / group;
  const size_t v_row = width * static_cast<size_t>(bits) / 8;
  uint8_t* vparams = dst + layout.VParamsOffset(level);
  uint8_t* vvalues = dst + layout.VValuesOffset(level);
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t g = 0; g < groups; ++g) {
      uint8_t* run = vvalues + t * v_row + g * group * static_cast<size_t>(bits) / 8;
      const QuantParams p = QuantizeRun(v + t * width + g * group, 1, group, group, bits, run);
      std::memcpy(vparams + (t * groups + g) * sizeof(QuantParams), &p, sizeof(p));
    }
  }
}

void WriteTokenF16(const KvLayout& layout, uint8_t* slice, size_t t, const float* k_row,
                   const float* v_row) {
  const size_t width = layout.width(), tokens = layout.chunk_tokens;
  uint8_t* vbase = slice + layout.VValuesOffset(KvLevel::kF16);
  for (size_t c = 0; c < width; ++c) {
    const uint16_t hk = F32ToF16(k_row[c]), hv = F32ToF16(v_row[c]);
    std::memcpy(slice + 2 * (c * tokens + t), &hk, 2);
    std::memcpy(vbase + 2 * (t * width + c), &hv, 2);
  }
}

}  // namespace llms
