// AlignedBuffer: heap memory for direct I/O (an address, offset and length on the device's block
// boundary), used by the file seam (env) and by whoever prepares bytes for it (the chunk writer
// copies a chunk straight into one, which the store writes as it is).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>

#include "base/status.h"

namespace llms {

// Direct I/O (O_DIRECT) moves bytes between the device and user memory without the page cache,
// so the buffer address, the file offset and the length must all be multiples of the device's
// logical block size. 4096 covers every flash device we target (512-byte and 4 KiB sectors) and
// is the page size, so one value serves both.
inline constexpr size_t kDirectIoAlignment = 4096;

// `n` rounded up to a multiple of kDirectIoAlignment.
constexpr uint64_t AlignUp(uint64_t n) {
  return (n + kDirectIoAlignment - 1) / kDirectIoAlignment * kDirectIoAlignment;
}
constexpr uint64_t AlignDown(uint64_t n) { return n / kDirectIoAlignment * kDirectIoAlignment; }
constexpr bool IsAligned(uint64_t n) { return n % kDirectIoAlignment == 0; }

// Heap memory whose address is a multiple of kDirectIoAlignment and whose size is rounded up to
// one, as direct I/O requires. Zero-filled on allocation. Move-only.
// Thread safety: none; like a std::vector.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // An AlignedBuffer of AlignUp(size) bytes (at least one block). ResourceExhausted when the
  // allocation fails.
  static StatusOr<AlignedBuffer> Allocate(size_t size);

  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }
  std::span<uint8_t> span() { return {data_.get(), size_}; }
  std::span<const uint8_t> span() const { return {data_.get(), size_}; }

 private:
  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, FreeDeleter> data_;  // from std::aligned_alloc
  size_t size_ = 0;
};

}  // namespace llms
