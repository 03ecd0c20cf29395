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

// Writes one job unless a newer version was written meanwhile, or the chunk is gone. Returns
// the bytes written (0 when skipped).
StatusOr<size_t> ChunkWriter::Write(WriteJob job) {
  MutexLock write_lock(&write_mu_);
  if (!hooks_.still_wanted(job)) return size_t{0};
  if (job.extent.size() < job.meta.data_bytes()) {
    return Status::ResourceExhausted("no memory for the write buffer of chunk " +
                                     std::to_string(job.index) + " of context " +
                                     std::to_string(job.context));
  }
  const ChunkStore::ChunkWrite write{job.meta, job.extent.span().first(job.meta.data_bytes()),
                                     /*padded=*/true};
  StatusOr<std::vector<ChunkMeta>> stored =
      store_->WriteChunks(std::span<const ChunkStore::ChunkWrite>(&write, 1));
  if (!stored.ok()) {
    // The context was deleted meanwhile: nothing to keep.
    if (stored.status().code() == StatusCode::kNotFound) return size_t{0};
    return stored.status();
  }
  hooks_.written(job, std::move((*stored)[0]));
  return job.meta.data_bytes();
}

Status ChunkWriter::WriteForCall(WriteJob job) {
  const Stopwatch writing;
  StatusOr<size_t> written = Write(std::move(job));
  MutexLock lock(&mu_);
  call_seconds_ += writing.Seconds();
  if (written.ok()) call_bytes_ += *written;
  return written.status();
}

void ChunkWriter::Queue(std::vector<WriteJob> jobs) {
  if (!thread_.joinable()) {  // written now, as part of the call
    for (WriteJob& job : jobs) {
      Status s = WriteForCall(std::move(job));
      MutexLock lock(&mu_);
      if (!s.ok()) failure_ = s;
    }
    return;
  }
  {
    MutexLock lock(&mu_);
    for (WriteJob& job : jobs) queue_.push_back(std::move(job));
  }
  cv_.NotifyAll();
}

Status ChunkWriter::WriteNow(WriteJob job) { return WriteForCall(std::move(job)); }

void ChunkWriter::Loop() {
  MutexLock lock(&mu_);
  for (;;) {
    while (!stop_ && queue_.empty()) cv_.Wait(&lock);
    if (queue_.empty()) return;  // stopping, nothing left
    WriteJob job = std::move(queue_.front());
    queue_.pop_front();
    ++in_flight_;
    lock.Unlock();
    StatusOr<size_t> written = Write(std::move(job));
    lock.Lock();
    --in_flight_;
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
