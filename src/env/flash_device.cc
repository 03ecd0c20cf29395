// FlashDevice: the classes' figures (sources in docs/flash_classes.md) and the timeline.
#include "env/flash_device.h"

#include <algorithm>

#include "base/check.h"

namespace llms {

const std::vector<FlashClass>& FlashClasses() {
  static const std::vector<FlashClass> classes = {
      // This machine's device as it is: the store's own I/O, nothing added.
      {"native", 0, 0, 0, 0, 0, 1},
      // A phone's UFS 3.1: 2.1 GB/s reads, 1.2 GB/s writes, a 32-command queue.
      {"ufs", 2.1e9, 1.2e9, 100e-6, 100e-6, 1e-3, 32},
      // A budget device's eMMC 5.1: 300 MB/s reads, 125 MB/s writes, one command at a time.
      {"emmc", 300e6, 125e6, 150e-6, 250e-6, 2e-3, 1},
      // A slow card or a disk (the paper's Jetson TX2 has a SATA HDD): 100 MB/s, 10 ms a request.
      {"slow", 100e6, 100e6, 10e-3, 10e-3, 10e-3, 1},
  };
  return classes;
}

std::optional<FlashClass> FlashClassByName(std::string_view name) {
  for (const FlashClass& c : FlashClasses()) {
    if (c.name == name) return c;
  }
  return std::nullopt;
}

StatusOr<FlashClass> ParseFlashClass(std::string_view name) {
  if (std::optional<FlashClass> c = FlashClassByName(name)) return *c;
  return Status::InvalidArgument("unknown flash class '" + std::string(name) + "' (one of " +
                                 FlashClassNames() + ")");
}

std::string FlashClassNames() {
  std::string names;
  for (const FlashClass& c : FlashClasses()) names += (names.empty() ? "" : ", ") + c.name;
  return names;
}

FlashDevice::FlashDevice(const FlashClass& c)
    : class_(c), slot_free_(std::max(1u, c.queue_depth), 0.0) {
  LLMS_DCHECK(c.shaped());
}

double FlashDevice::Submit(double now, Op op, std::span<const uint64_t> bytes) {
  const bool read = op == Op::kRead;
  const double fixed = read ? class_.read_seconds_per_request : class_.write_seconds_per_request;
  const double rate = read ? class_.read_bytes_per_second : class_.write_bytes_per_second;
  double last = now;
  for (const uint64_t n : bytes) {
    double& slot = *std::min_element(slot_free_.begin(), slot_free_.end());
    const double ready = std::max(now, slot) + fixed;  // the request's fixed cost is paid
    const double done = std::max(ready, channel_free_) + static_cast<double>(n) / rate;
    channel_free_ = done;
    slot = done;
    last = std::max(last, done);
  }
  return last;
}

double FlashDevice::Sync(double now) {
  double busy = std::max(now, channel_free_);
  for (const double s : slot_free_) busy = std::max(busy, s);
  const double done = busy + class_.sync_seconds;
  channel_free_ = done;
  std::fill(slot_free_.begin(), slot_free_.end(), done);
  return done;
}

}  // namespace llms
