// ShapedEnv: each request runs on the base file first, then waits for the device timeline; the
// request is dated when it was submitted, so the base device's own time counts toward the
// class's.
#include "env/shaped_env.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace llms {

struct ShapedEnv::Device {
  Device(const FlashClass& flash, const Clock* on, SleepUntil sleep)
      : timeline(flash), clock(on), sleep_until(std::move(sleep)) {}

  double Now() const { return clock->MonotonicSeconds(); }

  // Books requests submitted at `submitted` and waits until the device has done them.
  void Wait(double submitted, FlashDevice::Op op, std::span<const uint64_t> bytes) {
    double done;
    {
      std::lock_guard<std::mutex> lock(mu);
      done = timeline.Submit(submitted, op, bytes);
    }
    sleep_until(done);
  }
  void WaitSync(double submitted) {
    double done;
    {
      std::lock_guard<std::mutex> lock(mu);
      done = timeline.Sync(submitted);
    }
    sleep_until(done);
  }

  std::mutex mu;
  FlashDevice timeline;  // guarded by mu
  const Clock* const clock;
  const SleepUntil sleep_until;
};

namespace {

using Op = FlashDevice::Op;

// Reads a batch on `base` with up to `threads` requests in flight, as a queue would take them:
// this machine's disk read one at a time can be slower than a deep-queued class (a UFS class
// would then measure this disk's single-request speed).
void ReadConcurrently(RandomRWFile* base, std::span<RandomRWFile::ReadRequest> requests,
                      size_t threads) {
  threads = std::min(threads, requests.size());
  if (threads <= 1) return base->ReadMany(requests);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < requests.size(); i = next++) {
      StatusOr<size_t> n = base->Read(requests[i].offset, requests[i].out);
      requests[i].done = n.ok() ? *n : 0;
      requests[i].status = n.status();
    }
  };
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < threads; ++t) helpers.emplace_back(work);
  work();
  for (std::thread& h : helpers) h.join();
}

class ShapedFile final : public RandomRWFile {
 public:
  ShapedFile(std::unique_ptr<RandomRWFile> base, std::shared_ptr<ShapedEnv::Device> device,
             size_t read_threads)
      : base_(std::move(base)), device_(std::move(device)), read_threads_(read_threads) {}

  StatusOr<size_t> Read(uint64_t offset, std::span<uint8_t> out) override {
    const double submitted = device_->Now();
    StatusOr<size_t> n = base_->Read(offset, out);
    const uint64_t bytes = out.size();
    device_->Wait(submitted, Op::kRead, {&bytes, 1});
    return n;
  }
  void ReadMany(std::span<ReadRequest> requests) override {
    const double submitted = device_->Now();
    ReadConcurrently(base_.get(), requests, read_threads_);
    std::vector<uint64_t> bytes;
    for (const ReadRequest& r : requests) bytes.push_back(r.out.size());
    device_->Wait(submitted, Op::kRead, bytes);
  }
  Status Write(uint64_t offset, std::span<const uint8_t> data) override {
    const double submitted = device_->Now();
    Status s = base_->Write(offset, data);
    const uint64_t bytes = data.size();
    device_->Wait(submitted, Op::kWrite, {&bytes, 1});
    return s;
  }
  Status Sync() override {
    const double submitted = device_->Now();
    Status s = base_->Sync();
    device_->WaitSync(submitted);
    return s;
  }
  StatusOr<uint64_t> Size() override { return base_->Size(); }
  Status Truncate(uint64_t size) override { return base_->Truncate(size); }
  Status PunchHole(uint64_t offset, uint64_t length) override {
    return base_->PunchHole(offset, length);
  }
  const std::string& path() const override { return base_->path(); }
  bool direct_io_active() const override { return base_->direct_io_active(); }
  // -1: callers must not bypass the shaping with their own I/O on the descriptor.

 private:
  std::unique_ptr<RandomRWFile> base_;
  std::shared_ptr<ShapedEnv::Device> device_;
  const size_t read_threads_;
};

ShapedEnv::SleepUntil RealSleep(const Clock* clock) {
  return [clock](double until) {
    const double left = until - clock->MonotonicSeconds();
    if (left > 0) std::this_thread::sleep_for(std::chrono::duration<double>(left));
  };
}

}  // namespace

ShapedEnv::ShapedEnv(Env* base, const FlashClass& flash, const Clock* clock, SleepUntil sleep_until)
    : base_(base),
      flash_(flash),
      device_(std::make_shared<Device>(flash, clock,
                                       sleep_until ? std::move(sleep_until) : RealSleep(clock))) {}

ShapedEnv::~ShapedEnv() = default;

StatusOr<std::unique_ptr<RandomRWFile>> ShapedEnv::OpenRandomRWFile(const std::string& path,
                                                                    bool direct_io) {
  LLMS_ASSIGN_OR_RETURN(std::unique_ptr<RandomRWFile> file,
                        base_->OpenRandomRWFile(path, direct_io));
  // At most 8 reads in flight, as the store's io_uring would have on the native class.
  const size_t read_threads = std::min<size_t>(flash_.queue_depth, 8);
  return std::unique_ptr<RandomRWFile>(
      std::make_unique<ShapedFile>(std::move(file), device_, read_threads));
}

}  // namespace llms
