#include "memory/chunk_writer.h"

#include "base/clock.h"

namespace llms {

ChunkWriter::ChunkWriter(ChunkStore* store, bool background, ChunkWriterHooks hooks)
    : store_(store), hooks_(std::move(hooks)) {
  if (background) thread_ = std::thread([this] { Loop(); });
}

ChunkWriter::~ChunkWriter() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

// Writes the jobs still wanted (a newer version may have been written meanwhile, or the chunk be
// gone) as one store batch: one data sync and one transaction, however many chunks. Returns the
// bytes written.
StatusOr<size_t> ChunkWriter::Write(std::vector<WriteJob> jobs) {
  MutexLock write_lock(&write_mu_);
  return WriteLocked(std::move(jobs));
}

StatusOr<size_t> ChunkWriter::WriteLocked(std::vector<WriteJob> jobs) {
  std::vector<WriteJob> wanted;
  for (WriteJob& job : jobs) {
    if (!hooks_.still_wanted(job)) continue;
    if (job.extent.size() < job.meta.data_bytes()) {
      return Status::ResourceExhausted("no memory for the write buffer of chunk " +
                                       std::to_string(job.index) + " of context " +
                                       std::to_string(job.context));
    }
    // The same chunk queued twice (two calls ended before the writer ran): the later job wins.
    std::erase_if(wanted, [&](const WriteJob& w) {
      return w.context == job.context && w.index == job.index;
    });
    wanted.push_back(std::move(job));
  }
  std::vector<ChunkStore::ChunkWrite> writes;
  for (const WriteJob& job : wanted) {
    writes.push_back({job.meta, job.extent.span().first(job.meta.data_bytes()), /*padded=*/true});
  }
  if (writes.empty()) return size_t{0};
  StatusOr<std::vector<ChunkMeta>> stored = store_->WriteChunks(writes);
  if (!stored.ok() && stored.status().code() == StatusCode::kNotFound) {
    // A context was deleted meanwhile. The batch is all or nothing, so the others go one by
    // one, and the deleted context's chunks are dropped: nothing to keep.
    if (wanted.size() == 1) return size_t{0};
    size_t bytes = 0;
    for (WriteJob& job : wanted) {
      std::vector<WriteJob> one;
      one.push_back(std::move(job));
      StatusOr<size_t> n = WriteLocked(std::move(one));
      LLMS_RETURN_IF_ERROR(n.status());
      bytes += *n;
    }
    return bytes;
  }
  LLMS_RETURN_IF_ERROR(stored.status());
  size_t bytes = 0;
  for (size_t i = 0; i < wanted.size(); ++i) {
    hooks_.written(wanted[i], std::move((*stored)[i]));
    bytes += wanted[i].meta.data_bytes();
  }
  return bytes;
}

Status ChunkWriter::WriteForCall(std::vector<WriteJob> jobs) {
  const Stopwatch writing;
  StatusOr<size_t> written = Write(std::move(jobs));
  MutexLock lock(&mu_);
  call_seconds_ += writing.Seconds();
  if (written.ok()) call_bytes_ += *written;
  return written.status();
}

void ChunkWriter::Queue(std::vector<WriteJob> jobs) {
  if (!thread_.joinable()) {  // written now, as part of the call
    Status s = WriteForCall(std::move(jobs));
    MutexLock lock(&mu_);
    if (!s.ok()) failure_ = s;
    return;
  }
  {
    MutexLock lock(&mu_);
    for (WriteJob& job : jobs) queue_.push_back(std::move(job));
  }
  cv_.NotifyAll();
}

Status ChunkWriter::WriteNow(std::vector<WriteJob> jobs) { return WriteForCall(std::move(jobs)); }

void ChunkWriter::Loop() {
  MutexLock lock(&mu_);
  for (;;) {
    while (!stop_ && queue_.empty()) cv_.Wait(&lock);
    if (queue_.empty()) return;  // stopping, nothing left
    // Everything queued so far, up to a batch, goes in one store write.
    std::vector<WriteJob> batch;
    while (!queue_.empty() && batch.size() < kMaxBatchJobs) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    in_flight_ += batch.size();
    const size_t taken = batch.size();
    lock.Unlock();
    StatusOr<size_t> written = Write(std::move(batch));
    lock.Lock();
    in_flight_ -= taken;
    if (!written.ok()) failure_ = written.status();
    cv_.NotifyAll();
  }
}

Status ChunkWriter::Flush() {
  MutexLock lock(&mu_);
  while (!queue_.empty() || in_flight_ > 0) cv_.Wait(&lock);
  Status s = failure_;
  failure_ = Status::Ok();
  return s;
}

void ChunkWriter::ResetCallCounters() {
  MutexLock lock(&mu_);
  call_bytes_ = 0;
  call_seconds_ = 0;
}

size_t ChunkWriter::call_bytes_written() {
  MutexLock lock(&mu_);
  return call_bytes_;
}

double ChunkWriter::call_write_seconds() {
  MutexLock lock(&mu_);
  return call_seconds_;
}

}  // namespace llms
