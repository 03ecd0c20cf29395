// ChunkStore: write path (reserve, write, fdatasync, commit, retire), read path (pin, read,
// verify) and recovery. The rules these implement are docs/store_format.md.
#include "store/chunk_store.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>
#include <utility>

#include "store/meta_db.h"
#include "store/store_format.h"
#include "store/uring_reader.h"

namespace llms {
namespace fmt = store_format;

// One read of an aligned range of an extent, and the layers in it to verify and copy out.
struct ChunkStore::Pinned {
  const ChunkMeta* meta = nullptr;
  uint64_t begin = 0;   // offset inside the extent, aligned
  uint64_t length = 0;  // aligned
  uint32_t first_layer = 0;
  uint32_t layers = 0;
  std::span<uint8_t> out;  // layers * layer_bytes
  AlignedBuffer buf;
  uint64_t got = 0;  // bytes read
  bool pinned = false;
  Status status;
};

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ChunkName(const ChunkMeta& m) {
  return "context " + std::to_string(m.context_id) + " chunk " + std::to_string(m.chunk_index);
}

std::string Join(const std::string& dir, const char* name) { return dir + "/" + name; }

}  // namespace

ChunkStore::ChunkStore(OpenKey, Env* env, std::string dir, const Options& options)
    : env_(env),
      dir_(std::move(dir)),
      data_path_(Join(dir_, fmt::kDataFileName)),
      options_(options) {}

ChunkStore::~ChunkStore() = default;

StatusOr<std::unique_ptr<ChunkStore>> ChunkStore::Open(Env* env, const std::string& dir,
                                                       const Options& options) {
  auto store = std::make_unique<ChunkStore>(OpenKey(), env, dir, options);
  LLMS_RETURN_IF_ERROR(env->CreateDir(dir));
  StatusOr<std::unique_ptr<MetaDb>> meta = MetaDb::Open(Join(dir, fmt::kMetaFileName));
  if (meta.status().code() == StatusCode::kUnavailable) {
    return meta.status().WithContext("store " + dir + " is open in another ChunkStore");
  }
  if (!meta.ok()) return meta.status();
  store->meta_ = std::move(meta).value();
  LLMS_ASSIGN_OR_RETURN(store->data_, env->OpenRandomRWFile(store->data_path_, options.direct_io));
  // The directory entries of files created just now must survive power loss too.
  LLMS_RETURN_IF_ERROR(env->SyncDir(dir));
  LLMS_RETURN_IF_ERROR(store->Recover());
  if (options.io_uring_depth > 0 && store->data_->NativeHandleOrMinusOne() >= 0) {
    StatusOr<std::unique_ptr<UringReader>> ring = UringReader::Create(options.io_uring_depth);
    if (ring.ok()) store->uring_ = std::move(ring).value();  // else: pread, by design
  }
  return store;
}

std::string ChunkStore::CheckRecoveredRow(const ChunkMeta& c, uint64_t file_size) {
  if (c.extent_offset + c.extent_length > file_size) {
    return "extent [" + std::to_string(c.extent_offset) + ", " +
           std::to_string(c.extent_offset + c.extent_length) + ") ends past the end of " +
           data_path_ + " (" + std::to_string(file_size) + " bytes)";
  }
  if (options_.verify_on_open) {
    Pinned p;
    p.meta = &c;
    p.length = c.extent_length;
    p.layers = c.num_layers;
    std::vector<uint8_t> sink(c.data_bytes());
    p.out = sink;
    StatusOr<AlignedBuffer> buf = AlignedBuffer::Allocate(p.length);
    if (!buf.ok()) return buf.status().ToString();
    p.buf = std::move(buf).value();
    ReadPinned(std::span<Pinned>(&p, 1));  // unpinned: nothing else runs during Open
    Verify(p);
    recovery_.verified_chunks++;
    if (!p.status.ok()) return p.status.ToString();
  }
  if (!extents_.AddCommitted(c.extent_offset, c.extent_length, c.generation)) {
    return "extent at " + std::to_string(c.extent_offset) + " overlaps a newer chunk's extent";
  }
  return "";
}

Status ChunkStore::Recover() {
  std::lock_guard<std::mutex> lock(mu_);
  LLMS_ASSIGN_OR_RETURN(MetaDb::AllChunks all, meta_->ListAllChunks());
  LLMS_ASSIGN_OR_RETURN(const uint64_t file_size, data_->Size());
  std::vector<RecoveryReport::DroppedChunk> dropped = std::move(all.undecodable);
  // Newest first, so when two rows claim the same bytes the newer write wins.
  std::sort(all.rows.begin(), all.rows.end(),
            [](const ChunkMeta& a, const ChunkMeta& b) { return a.generation > b.generation; });
  for (const ChunkMeta& c : all.rows) {
    std::string why = CheckRecoveredRow(c, file_size);
    if (!why.empty()) dropped.push_back({c.context_id, c.chunk_index, std::move(why)});
  }
  LLMS_RETURN_IF_ERROR(meta_->DropChunkRows(dropped));
  extents_.RebuildHoles();
  // Bytes past the last committed extent belong to writes that never committed.
  file_size_ = file_size;
  ShrinkLocked();
  recovery_.truncated_bytes = file_size - file_size_;
  recovery_.dropped = std::move(dropped);
  return Status::Ok();
}

// ---- Contexts ----

StatusOr<uint64_t> ChunkStore::CreateContext(const std::string& app,
                                             std::span<const int32_t> tokens,
                                             const std::string& settings) {
  std::lock_guard<std::mutex> lock(mu_);
  return meta_->CreateContext(app, tokens, settings, NowMs());
}

Status ChunkStore::UpdateContextTokens(uint64_t id, std::span<const int32_t> tokens,
                                       uint32_t drop_chunks_from) {
  const uint64_t drop = drop_chunks_from == kKeepChunks ? MetaDb::kAllChunks : drop_chunks_from;
  std::lock_guard<std::mutex> lock(mu_);
  LLMS_ASSIGN_OR_RETURN(auto dropped, meta_->UpdateContextTokens(id, tokens, drop, NowMs()));
  RetireLocked(dropped);
  return Status::Ok();
}

Status ChunkStore::UpdateContextSettings(uint64_t id, const std::string& settings) {
  std::lock_guard<std::mutex> lock(mu_);
  return meta_->UpdateContextSettings(id, settings, NowMs());
}

StatusOr<ContextRecord> ChunkStore::GetContext(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  return meta_->GetContext(id);
}

StatusOr<std::vector<ContextRecord>> ChunkStore::ListContexts() {
  std::lock_guard<std::mutex> lock(mu_);
  return meta_->ListContexts();
}

Status ChunkStore::DeleteContext(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  LLMS_ASSIGN_OR_RETURN(auto dropped, meta_->DeleteContext(id));
  RetireLocked(dropped);
  return Status::Ok();
}

// ---- Chunk metadata ----

StatusOr<std::vector<ChunkMeta>> ChunkStore::ListChunks(uint64_t context_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return meta_->ListChunks(context_id);
}

StatusOr<ChunkMeta> ChunkStore::GetChunk(uint64_t context_id, uint32_t chunk_index) {
  std::lock_guard<std::mutex> lock(mu_);
  return meta_->GetChunk(context_id, chunk_index);
}

Status ChunkStore::DeleteChunk(uint64_t context_id, uint32_t chunk_index) {
  std::lock_guard<std::mutex> lock(mu_);
  LLMS_ASSIGN_OR_RETURN(auto dropped,
                        meta_->DeleteChunks(context_id, chunk_index, chunk_index + 1ull));
  if (dropped.empty()) {
    return Status::NotFound("chunk " + std::to_string(chunk_index) + " of context " +
                            std::to_string(context_id) + " is not stored");
  }
  RetireLocked(dropped);
  return Status::Ok();
}

Status ChunkStore::TruncateContextChunks(uint64_t context_id, uint32_t first_dropped) {
  std::lock_guard<std::mutex> lock(mu_);
  LLMS_ASSIGN_OR_RETURN(auto dropped,
                        meta_->DeleteChunks(context_id, first_dropped, MetaDb::kAllChunks));
  RetireLocked(dropped);
  return Status::Ok();
}

void ChunkStore::RetireLocked(std::span<const ChunkMeta> rows) {
  for (const ChunkMeta& c : rows) extents_.Retire(c.extent_offset);
  ShrinkLocked();
}

void ChunkStore::ShrinkLocked() {
  const uint64_t end = extents_.end();
  if (end >= file_size_) return;
  // A failed truncate only leaves free bytes at the tail; the next shrink or Open retries.
  if (data_->Truncate(end).ok()) file_size_ = end;
}

// ---- Write path ----

StatusOr<ChunkMeta> ChunkStore::WriteChunk(const ChunkMeta& meta, std::span<const uint8_t> bytes) {
  const ChunkWrite write{meta, bytes};
  LLMS_ASSIGN_OR_RETURN(auto written, WriteChunks(std::span<const ChunkWrite>(&write, 1)));
  return std::move(written[0]);
}

StatusOr<std::vector<ChunkMeta>> ChunkStore::PrepareWrites(
    std::span<const ChunkWrite> writes) const {
  std::vector<ChunkMeta> metas;
  std::set<std::pair<uint64_t, uint32_t>> keys;
  for (const ChunkWrite& w : writes) {
    ChunkMeta m = w.meta;
    const std::string name = ChunkName(m);
    if (m.num_layers < 1 || m.num_layers > fmt::kMaxLayers || m.layer_bytes < 1 ||
        m.layer_bytes > fmt::kMaxLayerBytes) {
      return Status::InvalidArgument(name + ": num_layers " + std::to_string(m.num_layers) +
                                     " or layer_bytes " + std::to_string(m.layer_bytes) +
                                     " out of range");
    }
    if (w.bytes.size() != m.data_bytes()) {
      return Status::InvalidArgument(name + ": " + std::to_string(w.bytes.size()) +
                                     " bytes given, num_layers * layer_bytes is " +
                                     std::to_string(m.data_bytes()));
    }
    if (!keys.insert({m.context_id, m.chunk_index}).second) {
      return Status::InvalidArgument(name + " appears twice in one WriteChunks");
    }
    m.extent_length = AlignUp(m.data_bytes());
    m.layer_checksums.resize(m.num_layers);
    for (uint32_t l = 0; l < m.num_layers; ++l) {
      m.layer_checksums[l] =
          fmt::LayerChecksum(w.bytes.subspan(uint64_t{l} * m.layer_bytes, m.layer_bytes));
    }
    metas.push_back(std::move(m));
  }
  return metas;
}

Status ChunkStore::WriteExtents(std::span<const ChunkMeta> metas,
                                std::span<const ChunkWrite> writes) {
  for (size_t i = 0; i < metas.size(); ++i) {
    // Direct I/O needs an aligned source; the padding past the data stays zero.
    LLMS_ASSIGN_OR_RETURN(AlignedBuffer buf, AlignedBuffer::Allocate(metas[i].extent_length));
    std::memcpy(buf.data(), writes[i].bytes.data(), writes[i].bytes.size());
    LLMS_RETURN_IF_ERROR(data_->Write(metas[i].extent_offset, buf.span()));
    writes_++;
    bytes_written_ += buf.size();
  }
  return Status::Ok();
}

Status ChunkStore::FullStatusLocked(const Status& s, uint64_t need) const {
  return Status::ResourceExhausted("flash store full: need " + std::to_string(need) + " bytes in " +
                                   data_path_ + " (data file " + std::to_string(extents_.end()) +
                                   " bytes, " + std::to_string(extents_.live_bytes()) + " live, " +
                                   std::to_string(extents_.hole_bytes()) +
                                   " in holes); nothing stored was lost: " + s.message());
}

StatusOr<std::vector<ChunkMeta>> ChunkStore::WriteChunks(std::span<const ChunkWrite> writes) {
  LLMS_ASSIGN_OR_RETURN(std::vector<ChunkMeta> metas, PrepareWrites(writes));
  uint64_t need = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (ChunkMeta& m : metas) {
      m.extent_offset = extents_.Reserve(m.extent_length);
      need += m.extent_length;
    }
    file_size_ = std::max(file_size_, extents_.end());
  }
  // Data first, durable before any row points at it; the reserved extents are ours alone.
  Status s = WriteExtents(metas, writes);
  if (s.ok()) {
    s = data_->Sync();
    syncs_++;
  }
  if (s.ok() && test_fail_before_commit_) {
    s = Status::IOError("TEST_FailBeforeCommit: crashed between data sync and commit");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (s.ok()) {
    StatusOr<std::vector<ChunkMeta>> replaced = meta_->PutChunks(metas);
    if (replaced.ok()) {
      for (const ChunkMeta& m : metas) {
        extents_.Commit(m.extent_offset, m.extent_length, m.generation);
      }
      RetireLocked(*replaced);
      return metas;
    }
    s = replaced.status();
  }
  for (const ChunkMeta& m : metas) extents_.Unreserve(m.extent_offset, m.extent_length);
  ShrinkLocked();
  if (s.code() == StatusCode::kResourceExhausted) return FullStatusLocked(s, need);
  return s;
}

// ---- Read path ----

Status ChunkStore::ReadLayer(const ChunkMeta& meta, uint32_t layer, std::span<uint8_t> out) {
  LayerRead read{&meta, layer, out, Status()};
  return ReadLayers(std::span<LayerRead>(&read, 1));
}

Status ChunkStore::ReadLayers(std::span<LayerRead> reads) {
  std::vector<Pinned> reqs(reads.size());
  for (size_t i = 0; i < reads.size(); ++i) {
    const ChunkMeta& m = *reads[i].meta;
    Pinned& p = reqs[i];
    p.meta = &m;
    if (reads[i].layer >= m.num_layers || reads[i].out.size() != m.layer_bytes) {
      p.status = Status::InvalidArgument(
          ChunkName(m) + ": layer " + std::to_string(reads[i].layer) + " of " +
          std::to_string(m.num_layers) + " into " + std::to_string(reads[i].out.size()) +
          " bytes (layer_bytes " + std::to_string(m.layer_bytes) + ")");
      continue;
    }
    const uint64_t lo = uint64_t{reads[i].layer} * m.layer_bytes;
    p.begin = AlignDown(lo);
    p.length = AlignUp(lo + m.layer_bytes) - p.begin;
    p.first_layer = reads[i].layer;
    p.layers = 1;
    p.out = reads[i].out;
  }
  const Status first = Read(reqs);
  for (size_t i = 0; i < reads.size(); ++i) reads[i].status = reqs[i].status;
  return first;
}

Status ChunkStore::ReadChunk(const ChunkMeta& meta, std::span<uint8_t> out) {
  Pinned p;
  p.meta = &meta;
  if (out.size() != meta.data_bytes()) {
    return Status::InvalidArgument(ChunkName(meta) + ": " + std::to_string(out.size()) +
                                   " bytes given for " + std::to_string(meta.data_bytes()));
  }
  p.length = AlignUp(meta.data_bytes());
  p.layers = meta.num_layers;
  p.out = out;
  return Read(std::span<Pinned>(&p, 1));
}

Status ChunkStore::Read(std::span<Pinned> reqs) {
  for (Pinned& p : reqs) {
    if (!p.status.ok()) continue;
    const ChunkMeta& m = *p.meta;
    if (m.layer_checksums.size() != m.num_layers || p.begin + p.length > m.extent_length) {
      p.status = Status::InvalidArgument(ChunkName(m) + ": metadata not from this store");
      continue;
    }
    StatusOr<AlignedBuffer> buf = AlignedBuffer::Allocate(p.length);
    if (!buf.ok()) p.status = buf.status();
    if (buf.ok()) p.buf = std::move(buf).value();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
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
  ReadPinned(reqs);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Pinned& p : reqs) {
      if (p.pinned) extents_.Unpin(p.meta->extent_offset);
    }
  }
  Status first;
  for (Pinned& p : reqs) {
    Verify(p);
    if (first.ok() && !p.status.ok()) first = p.status;
  }
  return first;
}

void ChunkStore::ReadPinned(std::span<Pinned> reqs) {
  std::vector<UringReader::Request> batch;
  std::vector<Pinned*> owners;
  for (Pinned& p : reqs) {
    if (!p.status.ok()) continue;
    batch.push_back({p.meta->extent_offset + p.begin, p.buf.span(), 0, Status()});
    owners.push_back(&p);
    reads_++;
    bytes_read_ += p.length;
  }
  bool done = false;
  if (batch.size() > 1 && uring_ != nullptr) {
    std::unique_lock<std::mutex> ring(uring_mu_, std::try_to_lock);
    if (ring.owns_lock()) {
      // A ring failure is also recorded in every unfinished request.
      (void)uring_->Read(data_->NativeHandleOrMinusOne(), data_path_.c_str(), batch);
      done = true;
    }
  }
  if (!done) {
    for (UringReader::Request& r : batch) {
      StatusOr<size_t> n = data_->Read(r.offset, r.buf);
      if (n.ok()) r.done = *n;
      r.status = n.status();
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    owners[i]->got = batch[i].done;
    owners[i]->status = batch[i].status;
  }
}

void ChunkStore::Verify(Pinned& p) {
  if (!p.status.ok()) return;
  const ChunkMeta& m = *p.meta;
  const uint64_t file_offset = m.extent_offset + p.begin;
  if (p.got < p.length) {
    p.status =
        Status::Corruption(ChunkName(m) + ": short read of chunks.dat at offset " +
                           std::to_string(file_offset) + ": got " + std::to_string(p.got) + " of " +
                           std::to_string(p.length) + " bytes (data file truncated?)");
    return;
  }
  for (uint32_t l = p.first_layer; l < p.first_layer + p.layers; ++l) {
    const uint64_t at = uint64_t{l} * m.layer_bytes - p.begin;
    const std::span<const uint8_t> slice(p.buf.data() + at, m.layer_bytes);
    const uint64_t sum = fmt::LayerChecksum(slice);
    if (sum != m.layer_checksums[l]) {
      checksum_failures_++;
      p.status = Status::Corruption(ChunkName(m) + " layer " + std::to_string(l) +
                                    ": checksum mismatch in chunks.dat at "
                                    "offset " +
                                    std::to_string(file_offset + at) + " (" +
                                    std::to_string(m.layer_bytes) + " bytes): stored " +
                                    std::to_string(m.layer_checksums[l]) + ", computed " +
                                    std::to_string(sum));
      return;
    }
    std::memcpy(p.out.data() + uint64_t{l - p.first_layer} * m.layer_bytes, slice.data(),
                slice.size());
  }
}

StoreStats ChunkStore::stats() const {
  StoreStats s;
  s.reads = reads_;
  s.bytes_read = bytes_read_;
  s.writes = writes_;
  s.bytes_written = bytes_written_;
  s.syncs = syncs_;
  s.checksum_failures = checksum_failures_;
  s.direct_io = data_->direct_io_active();
  std::lock_guard<std::mutex> lock(mu_);
  s.data_file_bytes = extents_.end();
  s.live_bytes = extents_.live_bytes();
  s.free_bytes = extents_.hole_bytes();
  s.chunks = extents_.committed_count();
  s.io_uring = uring_ != nullptr;
  return s;
}

}  // namespace llms
