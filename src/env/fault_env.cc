// FaultEnv: unsynced RandomRWFile writes live in memory per path until Sync, so dropping them
// is exact; see fault_env.h for the model.
#include "env/fault_env.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace llms {

struct FaultEnv::PathState {
  struct Pending {
    uint64_t offset;
    std::vector<uint8_t> bytes;
    uint64_t end() const { return offset + bytes.size(); }
  };
  std::mutex mu;
  std::vector<Pending> pending;  // guarded by mu; applied in order

  uint64_t PendingEnd() const {
    uint64_t end = 0;
    for (const Pending& p : pending) end = std::max(end, p.end());
    return end;
  }
};

namespace {

using PathState = FaultEnv::PathState;

class FaultRandomRWFile final : public RandomRWFile {
 public:
  // `env` must outlive the file.
  FaultRandomRWFile(FaultEnv* env, std::shared_ptr<PathState> state,
                    std::unique_ptr<RandomRWFile> base, bool direct_requested)
      : env_(env),
        state_(std::move(state)),
        base_(std::move(base)),
        direct_requested_(direct_requested) {}

  StatusOr<size_t> Read(uint64_t offset, std::span<uint8_t> out) override {
    std::lock_guard<std::mutex> lock(state_->mu);
    LLMS_ASSIGN_OR_RETURN(const size_t from_base, base_->Read(offset, out));
    LLMS_ASSIGN_OR_RETURN(const uint64_t end, SizeLocked());
    const size_t n =
        offset >= end ? 0 : static_cast<size_t>(std::min<uint64_t>(out.size(), end - offset));
    if (n > from_base) std::memset(out.data() + from_base, 0, n - from_base);  // sparse gap
    for (const PathState::Pending& p : state_->pending) {
      const uint64_t lo = std::max(offset, p.offset);
      const uint64_t hi = std::min(offset + n, p.end());
      if (lo < hi)
        std::memcpy(out.data() + (lo - offset), p.bytes.data() + (lo - p.offset), hi - lo);
    }
    env_->CountRead(n);
    return n;
  }

  Status Write(uint64_t offset, std::span<const uint8_t> data) override {
    if (direct_requested_ && !(IsAligned(offset) && IsAligned(data.size()) &&
                               IsAligned(reinterpret_cast<uintptr_t>(data.data())))) {
      return Status::InvalidArgument(path() + ": direct I/O write at offset " +
                                     std::to_string(offset) + " is not aligned to " +
                                     std::to_string(kDirectIoAlignment));
    }
    LLMS_RETURN_IF_ERROR(env_->ChargeWrite(path(), offset, data.size()));
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->pending.push_back({offset, std::vector<uint8_t>(data.begin(), data.end())});
    return Status::Ok();
  }

  Status Sync() override {
    LLMS_RETURN_IF_ERROR(env_->ChargeSync("fdatasync " + path()));
    std::lock_guard<std::mutex> lock(state_->mu);
    for (const PathState::Pending& p : state_->pending) {
      // The base file may be O_DIRECT: hand it an aligned copy.
      LLMS_ASSIGN_OR_RETURN(AlignedBuffer buf, AlignedBuffer::Allocate(p.bytes.size()));
      std::memcpy(buf.data(), p.bytes.data(), p.bytes.size());
      LLMS_RETURN_IF_ERROR(base_->Write(p.offset, buf.span().first(p.bytes.size())));
    }
    state_->pending.clear();
    return base_->Sync();
  }

  StatusOr<uint64_t> Size() override {
    std::lock_guard<std::mutex> lock(state_->mu);
    return SizeLocked();
  }

  Status Truncate(uint64_t size) override {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto& pending = state_->pending;
    std::erase_if(pending, [size](const PathState::Pending& p) { return p.offset >= size; });
    for (PathState::Pending& p : pending) {
      if (p.end() > size) p.bytes.resize(size - p.offset);
    }
    return base_->Truncate(size);
  }

  Status PunchHole(uint64_t offset, uint64_t length) override {
    std::lock_guard<std::mutex> lock(state_->mu);
    for (PathState::Pending& p : state_->pending) {
      const uint64_t lo = std::max(offset, p.offset), hi = std::min(offset + length, p.end());
      if (lo < hi) std::memset(p.bytes.data() + (lo - p.offset), 0, hi - lo);
    }
    return base_->PunchHole(offset, length);
  }

  const std::string& path() const override { return base_->path(); }
  bool direct_io_active() const override { return base_->direct_io_active(); }

 private:
  StatusOr<uint64_t> SizeLocked() {
    LLMS_ASSIGN_OR_RETURN(const uint64_t base_size, base_->Size());
    return std::max(base_size, state_->PendingEnd());
  }

  FaultEnv* const env_;
  const std::shared_ptr<PathState> state_;
  const std::unique_ptr<RandomRWFile> base_;
  const bool direct_requested_;
};

class FaultWritableFile final : public WritableFile {
 public:
  // `env` must outlive the file.
  FaultWritableFile(FaultEnv* env, std::string path, std::unique_ptr<WritableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}
  Status Append(std::span<const uint8_t> data) override {
    LLMS_RETURN_IF_ERROR(env_->ChargeWrite(path_, appended_, data.size()));
    appended_ += data.size();
    return base_->Append(data);
  }
  Status Sync() override {
    LLMS_RETURN_IF_ERROR(env_->ChargeSync("fsync " + path_));
    return base_->Sync();
  }
  Status Close() override { return base_->Close(); }

 private:
  FaultEnv* const env_;
  const std::string path_;
  const std::unique_ptr<WritableFile> base_;
  uint64_t appended_ = 0;
};

}  // namespace

FaultEnv::FaultEnv(Env* base) : base_(base) {}
FaultEnv::~FaultEnv() = default;

void FaultEnv::SetWriteLimit(uint64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  write_limit_ = limit;
}

void FaultEnv::SetSyncFailure(bool fail) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_syncs_ = fail;
}

void FaultEnv::DropUnsyncedData() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [path, state] : paths_) {
    std::lock_guard<std::mutex> state_lock(state->mu);
    state->pending.clear();
  }
}

FaultEnv::Counters FaultEnv::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

Status FaultEnv::ChargeWrite(const std::string& path, uint64_t offset, uint64_t bytes) {
  if (observer_) observer_("write", path);
  std::lock_guard<std::mutex> lock(mu_);
  if (counters_.bytes_written + bytes > write_limit_) {
    return Status::FromErrno("write " + path + " at offset " + std::to_string(offset) +
                                 " (injected: more than " + std::to_string(write_limit_) +
                                 " bytes written)",
                             ENOSPC);
  }
  counters_.writes++;
  counters_.bytes_written += bytes;
  return Status::Ok();
}

Status FaultEnv::ChargeSync(const std::string& what) {
  if (observer_) observer_("sync", what);
  std::lock_guard<std::mutex> lock(mu_);
  if (fail_syncs_) return Status::IOError(what + ": injected sync failure");
  counters_.syncs++;
  return Status::Ok();
}

void FaultEnv::CountRead(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  counters_.reads++;
  counters_.bytes_read += bytes;
}

std::shared_ptr<FaultEnv::PathState> FaultEnv::StateFor(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<PathState>& state = paths_[path];
  if (state == nullptr) state = std::make_shared<PathState>();
  return state;
}

StatusOr<std::unique_ptr<ReadOnlyRegion>> FaultEnv::MapFile(const std::string& path) {
  return base_->MapFile(path);
}

StatusOr<std::unique_ptr<WritableFile>> FaultEnv::NewWritableFile(const std::string& path) {
  LLMS_ASSIGN_OR_RETURN(auto file, base_->NewWritableFile(path));
  {
    std::lock_guard<std::mutex> lock(mu_);
    paths_.erase(path);  // truncated: older unsynced writes are gone
  }
  return std::unique_ptr<WritableFile>(
      std::make_unique<FaultWritableFile>(this, path, std::move(file)));
}

Status FaultEnv::RenameFile(const std::string& from, const std::string& to) {
  LLMS_RETURN_IF_ERROR(base_->RenameFile(from, to));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = paths_.find(from);
  paths_.erase(to);
  if (it != paths_.end()) {
    paths_[to] = std::move(it->second);
    paths_.erase(it);
  }
  return Status::Ok();
}

Status FaultEnv::RemoveFile(const std::string& path) {
  LLMS_RETURN_IF_ERROR(base_->RemoveFile(path));
  std::lock_guard<std::mutex> lock(mu_);
  paths_.erase(path);
  return Status::Ok();
}

bool FaultEnv::FileExists(const std::string& path) { return base_->FileExists(path); }

StatusOr<std::unique_ptr<RandomRWFile>> FaultEnv::OpenRandomRWFile(const std::string& path,
                                                                   bool direct_io) {
  LLMS_ASSIGN_OR_RETURN(auto file, base_->OpenRandomRWFile(path, direct_io));
  return std::unique_ptr<RandomRWFile>(
      std::make_unique<FaultRandomRWFile>(this, StateFor(path), std::move(file), direct_io));
}

Status FaultEnv::CreateDir(const std::string& path) { return base_->CreateDir(path); }

Status FaultEnv::SyncDir(const std::string& path) {
  LLMS_RETURN_IF_ERROR(ChargeSync("fsync directory " + path));
  return base_->SyncDir(path);
}

}  // namespace llms
