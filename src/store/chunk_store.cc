// ChunkStore: write path (reserve, write, fdatasync, commit, retire), read path (pin, read,
// verify) and recovery. The rules these implement are docs/store_format.md.
#include "store/chunk_store.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>

#include "base/clock.h"
#include "store/chunk_store_internal.h"
#include "store/meta_db.h"
#include "store/store_format.h"

namespace llms {
namespace fmt = store_format;

namespace {

int64_t NowMs() { return Clock::Real()->UnixMillis(); }

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
  {
    MutexLock lock(&store->mu_);
    store->meta_ = std::move(meta).value();
  }
  LLMS_ASSIGN_OR_RETURN(store->data_, env->OpenRandomRWFile(store->data_path_, options.direct_io));
  // The directory entries of files created just now must survive power loss too.
  LLMS_RETURN_IF_ERROR(env->SyncDir(dir));
  LLMS_RETURN_IF_ERROR(store->Recover());
  {
    MutexLock lock(&store->mu_);
    store->EnsureReserveLocked();
  }
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
    ReadPinned(std::span<Pinned>(&p, 1), false);  // unpinned: nothing else runs during Open
    recovery_.verified_chunks++;
    if (!p.status.ok()) return p.status.ToString();
  }
  if (!extents_.AddCommitted(c.extent_offset, c.extent_length, c.generation)) {
    return "extent at " + std::to_string(c.extent_offset) + " overlaps a newer chunk's extent";
  }
  return "";
}

Status ChunkStore::Recover() {
  MutexLock lock(&mu_);
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
                                             const std::string& origin) {
  MutexLock lock(&mu_);
  return meta_->CreateContext(app, tokens, origin, NowMs());
}

Status ChunkStore::UpdateContext(uint64_t id, std::span<const int32_t> tokens, uint64_t kv_tokens,
                                 uint32_t drop_chunks_from) {
  if (kv_tokens > tokens.size()) {
    return Status::InvalidArgument("context " + std::to_string(id) + ": KV length " +
                                   std::to_string(kv_tokens) + " exceeds its " +
                                   std::to_string(tokens.size()) + " tokens");
  }
  if (test_fail_context_updates_) {
    return Status::ResourceExhausted("TEST_FailContextUpdates: " + dir_ + " is full");
  }
  const uint64_t drop = drop_chunks_from == kKeepChunks ? MetaDb::kAllChunks : drop_chunks_from;
  MutexLock lock(&mu_);
  LLMS_ASSIGN_OR_RETURN(auto dropped, meta_->UpdateContext(id, tokens, kv_tokens, drop, NowMs()));
  context_updates_++;
  RetireLocked(dropped);
  return Status::Ok();
}

StatusOr<std::vector<ContextRecord>> ChunkStore::ListContexts() {
  MutexLock lock(&mu_);
  return meta_->ListContexts();
}

Status ChunkStore::DeleteContext(uint64_t id) {
  MutexLock lock(&mu_);
  StatusOr<std::vector<ChunkMeta>> dropped = meta_->DeleteContext(id);
  const std::string reserve = Join(dir_, fmt::kReserveFileName);
  if (dropped.status().code() == StatusCode::kResourceExhausted && env_->FileExists(reserve)) {
    // The disk is full: the reserve makes room for the delete, which then frees more.
    (void)env_->RemoveFile(reserve);
    dropped = meta_->DeleteContext(id);
  }
  if (!dropped.ok()) return dropped.status();
  RetireLocked(*dropped);
  EnsureReserveLocked();
  return Status::Ok();
}

void ChunkStore::EnsureReserveLocked() {
  const std::string path = Join(dir_, fmt::kReserveFileName);
  if (options_.reserve_bytes == 0 || env_->FileExists(path)) return;
  auto write = [&]() -> Status {
    LLMS_ASSIGN_OR_RETURN(auto file, env_->NewWritableFile(path));
    const std::vector<uint8_t> zeros(64 << 10, 0);
    for (uint64_t left = options_.reserve_bytes; left > 0;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, zeros.size()));
      LLMS_RETURN_IF_ERROR(file->Append(std::span<const uint8_t>(zeros).first(n)));
      left -= n;
    }
    LLMS_RETURN_IF_ERROR(file->Sync());
    return file->Close();
  };
  if (!write().ok()) (void)env_->RemoveFile(path);  // no room yet: a later delete retries
}

// ---- Chunk metadata ----

StatusOr<std::vector<ChunkMeta>> ChunkStore::ListChunks(uint64_t context_id) {
  MutexLock lock(&mu_);
  return meta_->ListChunks(context_id);
}

Status ChunkStore::DeleteChunk(uint64_t context_id, uint32_t chunk_index) {
  MutexLock lock(&mu_);
  LLMS_ASSIGN_OR_RETURN(auto dropped,
                        meta_->DeleteChunks(context_id, chunk_index, chunk_index + 1ull));
  if (dropped.empty()) {
    return Status::NotFound("chunk " + std::to_string(chunk_index) + " of context " +
                            std::to_string(context_id) + " is not stored");
  }
  RetireLocked(dropped);
  return Status::Ok();
}

void ChunkStore::RetireLocked(std::span<const ChunkMeta> rows) {
  for (const ChunkMeta& c : rows) extents_.Retire(c.extent_offset);
  ShrinkLocked();
}

void ChunkStore::ShrinkLocked() {
  const uint64_t end = extents_.end();
  // Freed extents inside the file go back to the file system, so deleting a context frees disk
  // space even when live chunks lie after it. Under mu_: no write can reserve them meanwhile.
  // A file system that cannot punch holes keeps the bytes for reuse; nothing is lost.
  for (const auto& [offset, length] : extents_.TakeFreed()) {
    if (offset < end) (void)data_->PunchHole(offset, std::min(length, end - offset));
  }
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
    const ChunkWrite& w = writes[i];
    const uint64_t length = metas[i].extent_length;
    if (w.padded && IsAligned(reinterpret_cast<uintptr_t>(w.bytes.data()))) {
      LLMS_RETURN_IF_ERROR(data_->Write(metas[i].extent_offset, {w.bytes.data(), length}));
    } else {
      // Direct I/O needs an aligned source; the padding past the data stays zero.
      LLMS_ASSIGN_OR_RETURN(AlignedBuffer buf, AlignedBuffer::Allocate(length));
      std::memcpy(buf.data(), w.bytes.data(), w.bytes.size());
      LLMS_RETURN_IF_ERROR(data_->Write(metas[i].extent_offset, buf.span()));
    }
    writes_++;
    bytes_written_ += length;
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
    MutexLock lock(&mu_);
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
  MutexLock lock(&mu_);
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

StoreStats ChunkStore::stats() const {
  StoreStats s;
  s.reads = reads_;
  s.bytes_read = bytes_read_;
  s.writes = writes_;
  s.bytes_written = bytes_written_;
  s.syncs = syncs_;
  s.context_updates = context_updates_;
  s.checksum_failures = checksum_failures_;
  s.direct_io = data_->direct_io_active();
  MutexLock lock(&mu_);
  s.data_file_bytes = extents_.end();
  s.live_bytes = extents_.live_bytes();
  s.free_bytes = extents_.hole_bytes();
  s.chunks = extents_.committed_count();
  s.io_uring = uring_ != nullptr;
  return s;
}

}  // namespace llms
