#include "base/aligned_buffer.h"

#include <cstring>
#include <string>

namespace llms {

StatusOr<AlignedBuffer> AlignedBuffer::Allocate(size_t size) {
  const size_t rounded = AlignUp(size == 0 ? 1 : size);
  AlignedBuffer buf;
  buf.data_.reset(static_cast<uint8_t*>(std::aligned_alloc(kDirectIoAlignment, rounded)));
  if (buf.data_ == nullptr) {
    return Status::ResourceExhausted("cannot allocate an aligned buffer of " +
                                     std::to_string(rounded) + " bytes");
  }
  std::memset(buf.data_.get(), 0, rounded);
  buf.size_ = rounded;
  return buf;
}

}  // namespace llms
