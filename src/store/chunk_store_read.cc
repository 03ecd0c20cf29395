// ChunkStore's read path: pin the extents (so no rewrite reuses them under the read), read them
// (io_uring for batches, merging neighbours into large requests when asked), verify every layer
// against its checksum and copy it out, unpin. The rules are docs/store_format.md.
#include <algorithm>
#include <cstring>
#include <utility>

#include "store/chunk_store.h"
#include "store/chunk_store_internal.h"
#include "store/store_format.h"

namespace llms {
namespace fmt = store_format;
namespace {

// One device request: a file range covering one or more Pinned ranges.
struct DeviceRead {
  uint64_t offset = 0;
  uint64_t length = 0;
  std::vector<size_t> members;  // indices into the Pinned span
  AlignedBuffer buf;
};

}  // namespace

Status ChunkStore::ReadLayers(std::span<LayerRead> reads, uint32_t layers) {
  std::vector<Pinned> reqs(reads.size());
  for (size_t i = 0; i < reads.size(); ++i) {
    const ChunkMeta& m = *reads[i].meta;
    Pinned& p = reqs[i];
    p.meta = &m;
    const uint32_t count =
        reads[i].layer < m.num_layers ? std::min(layers, m.num_layers - reads[i].layer) : 0;
    if (count == 0 || reads[i].out.size() != uint64_t{count} * m.layer_bytes) {
      p.status = Status::InvalidArgument(
          ChunkName(m) + ": layer " + std::to_string(reads[i].layer) + " (+" +
          std::to_string(layers) + ") of " + std::to_string(m.num_layers) + " into " +
          std::to_string(reads[i].out.size()) + " bytes (layer_bytes " +
          std::to_string(m.layer_bytes) + ")");
      continue;
    }
    const uint64_t lo = uint64_t{reads[i].layer} * m.layer_bytes;
    p.begin = AlignDown(lo);
    p.length = AlignUp(lo + uint64_t{count} * m.layer_bytes) - p.begin;
    p.first_layer = reads[i].layer;
    p.layers = count;
    p.out = reads[i].out;
  }
  const Status first = Read(reqs, false);
  for (size_t i = 0; i < reads.size(); ++i) reads[i].status = reqs[i].status;
  return first;
}

Status ChunkStore::ReadChunks(std::span<ChunkRead> reads) {
  std::vector<Pinned> reqs(reads.size());
  for (size_t i = 0; i < reads.size(); ++i) {
    const ChunkMeta& m = *reads[i].meta;
    Pinned& p = reqs[i];
    p.meta = &m;
    if (reads[i].out.size() != m.data_bytes()) {
      p.status = Status::InvalidArgument(ChunkName(m) + ": " + std::to_string(reads[i].out.size()) +
                                         " bytes given for " + std::to_string(m.data_bytes()));
      continue;
    }
    p.length = AlignUp(m.data_bytes());
    p.layers = m.num_layers;
    p.out = reads[i].out;
  }
  const Status first = Read(reqs, true);
  for (size_t i = 0; i < reads.size(); ++i) reads[i].status = reqs[i].status;
  return first;
}

Status ChunkStore::Read(std::span<Pinned> reqs, bool merge) {
  for (Pinned& p : reqs) {
    if (!p.status.ok()) continue;
    const ChunkMeta& m = *p.meta;
    if (m.layer_checksums.size() != m.num_layers || p.begin + p.length > m.extent_length) {
      p.status = Status::InvalidArgument(ChunkName(m) + ": metadata not from this store");
    }
  }
  {
    MutexLock lock(&mu_);
    for (Pinned& p : reqs) {
      if (!p.status.ok()) continue;
      const ChunkMeta& m = *p.meta;
      p.pinned = extents_.Pin(m.extent_offset, m.extent_length, m.generation);
      if (!p.pinned) {
        p.status = Status::NotFound(ChunkName(m) + " generation " + std::to_string(m.generation) +
                                    " is no longer stored (rewritten or deleted)");
      }
    }
  }
  ReadPinned(reqs, merge);
  {
    MutexLock lock(&mu_);
    for (Pinned& p : reqs) {
      if (p.pinned) extents_.Unpin(p.meta->extent_offset);
    }
    ShrinkLocked();  // an extent retired during the read is free now
  }
  for (const Pinned& p : reqs) {
    if (!p.status.ok()) return p.status;
  }
  return Status::Ok();
}

void ChunkStore::ReadPinned(std::span<Pinned> reqs, bool merge) {
  std::vector<size_t> order;
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (reqs[i].status.ok()) order.push_back(i);
  }
  auto file_offset = [&](size_t i) { return reqs[i].meta->extent_offset + reqs[i].begin; };
  if (merge) {
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return file_offset(a) < file_offset(b); });
  }
  std::vector<DeviceRead> device;
  for (size_t i : order) {
    const uint64_t at = file_offset(i), length = reqs[i].length;
    if (merge && !device.empty()) {
      DeviceRead& d = device.back();
      const uint64_t end = d.offset + d.length;
      if (at >= end && at - end <= kMaxMergedGapBytes &&
          at + length - d.offset <= kMaxMergedReadBytes) {
        d.length = at + length - d.offset;
        d.members.push_back(i);
        continue;
      }
    }
    device.push_back({at, length, {i}, {}});
  }
  std::vector<UringReader::Request> batch;
  for (const DeviceRead& d : device) batch.push_back({d.offset, {}, 0, Status()});
  // Bounce buffers: a read needs an aligned buffer only while in flight and until verified.
  auto take = [&](size_t b, std::vector<AlignedBuffer>* pool) -> Status {
    DeviceRead& d = device[b];
    if (!pool->empty() && pool->back().size() >= d.length) {
      d.buf = std::move(pool->back());
      pool->pop_back();
    } else {
      LLMS_ASSIGN_OR_RETURN(d.buf,
                            AlignedBuffer::Allocate(std::max(d.length, kMaxMergedReadBytes)));
    }
    batch[b].buf = d.buf.span().first(d.length);
    reads_++;
    bytes_read_ += d.length;
    return Status::Ok();
  };
  auto finish = [&](size_t b, std::vector<AlignedBuffer>* pool) {
    const UringReader::Request& r = batch[b];
    DeviceRead& d = device[b];
    for (size_t i : d.members) {
      Pinned& p = reqs[i];
      if (!r.status.ok()) {
        p.status = r.status;
        continue;
      }
      const uint64_t at = file_offset(i) - d.offset;
      Verify(p, d.buf.data() + at, r.done > at ? std::min(r.done - at, p.length) : 0);
    }
    // Keep at most a ring's worth of the usual size, so the store's memory stays bounded.
    if (d.buf.size() == kMaxMergedReadBytes && pool->size() < kReadBufferPool) {
      pool->push_back(std::move(d.buf));
    }
    d.buf = AlignedBuffer();
  };
  if (batch.size() > 1 && uring_ != nullptr) {
    std::unique_lock<std::mutex> ring(uring_mu_, std::try_to_lock);
    if (ring.owns_lock()) {
      UringReader::Callbacks callbacks;
      callbacks.before_submit = [&](size_t b) { return take(b, &read_buffers_); };
      callbacks.on_done = [&](size_t b) { finish(b, &read_buffers_); };
      // A ring failure is also recorded in every unfinished request.
      (void)uring_->Read(data_->NativeHandleOrMinusOne(), data_path_.c_str(), batch, callbacks);
      return;
    }
  }
  // Without the ring: groups of up to kReadBufferPool requests go to the file as one batch (a
  // shaped device queues them together), their buffers cycled from group to group.
  std::vector<AlignedBuffer> pool;
  for (size_t first = 0; first < batch.size(); first += kReadBufferPool) {
    const size_t end = std::min(batch.size(), first + kReadBufferPool);
    std::vector<RandomRWFile::ReadRequest> group;
    std::vector<size_t> members;
    for (size_t b = first; b < end; ++b) {
      batch[b].status = take(b, &pool);
      if (!batch[b].status.ok()) continue;
      group.push_back({batch[b].offset, batch[b].buf, 0, Status()});
      members.push_back(b);
    }
    data_->ReadMany(group);
    for (size_t k = 0; k < group.size(); ++k) {
      batch[members[k]].done = group[k].done;
      batch[members[k]].status = group[k].status;
    }
    for (size_t b = first; b < end; ++b) finish(b, &pool);
  }
}

void ChunkStore::Verify(Pinned& p, const uint8_t* bytes, uint64_t got) {
  const ChunkMeta& m = *p.meta;
  const uint64_t file_offset = m.extent_offset + p.begin;
  if (got < p.length) {
    p.status =
        Status::Corruption(ChunkName(m) + ": short read of chunks.dat at offset " +
                           std::to_string(file_offset) + ": got " + std::to_string(got) + " of " +
                           std::to_string(p.length) + " bytes (data file truncated?)");
    return;
  }
  for (uint32_t l = p.first_layer; l < p.first_layer + p.layers; ++l) {
    const uint64_t at = uint64_t{l} * m.layer_bytes - p.begin;
    const std::span<const uint8_t> slice(bytes + at, m.layer_bytes);
    const uint64_t sum = fmt::LayerChecksum(slice);
    if (sum != m.layer_checksums[l]) {
      checksum_failures_++;
      p.status = Status::Corruption(
          ChunkName(m) + " layer " + std::to_string(l) + ": checksum mismatch in chunks.dat at " +
          "offset " + std::to_string(file_offset + at) + " (" + std::to_string(m.layer_bytes) +
          " bytes): stored " + std::to_string(m.layer_checksums[l]) + ", computed " +
          std::to_string(sum));
      return;
    }
    std::memcpy(p.out.data() + uint64_t{l - p.first_layer} * m.layer_bytes, slice.data(),
                slice.size());
  }
}

}  // namespace llms
