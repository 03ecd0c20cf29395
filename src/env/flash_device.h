// FlashDevice: the timing of a flash device class (bandwidth, per-request latency and queue
// depth, reads and writes apart, and the cost of a sync), as pure arithmetic on a timeline, so
// that the evaluation can run every system on the same phone-like device (env/shaped_env.h) and
// tests can check the model without sleeping. The classes and where their figures come from:
// docs/flash_classes.md.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace llms {

struct FlashClass {
  std::string name;
  // Sustained transfer rates once a request is under way.
  double read_bytes_per_second = 0;
  double write_bytes_per_second = 0;
  // Fixed cost of one request before its bytes move (command, lookup, NAND page access).
  double read_seconds_per_request = 0;
  double write_seconds_per_request = 0;
  // A sync (cache flush) after the writes before it have completed.
  double sync_seconds = 0;
  // Requests whose fixed costs overlap; their transfers still share one channel.
  unsigned queue_depth = 1;

  // "native" is this machine's own device, unshaped: every rate is 0.
  bool shaped() const { return read_bytes_per_second > 0; }
};

// native, ufs, emmc, slow (in that order).
const std::vector<FlashClass>& FlashClasses();
std::optional<FlashClass> FlashClassByName(std::string_view name);
// The class, or InvalidArgument naming the known ones (for command-line values).
StatusOr<FlashClass> ParseFlashClass(std::string_view name);
// "native, ufs, emmc, slow": for help texts and errors.
std::string FlashClassNames();

// The device's timeline. Requests submitted at `now` take the earliest free queue slot, pay the
// fixed cost there, then transfer their bytes on the one channel in submission order. A sync
// waits for everything submitted before it. Times are seconds on any monotonic clock.
// Thread safety: none (ShapedEnv serializes calls).
class FlashDevice {
 public:
  enum class Op { kRead, kWrite };
  // REQUIRES: `c.shaped()`.
  explicit FlashDevice(const FlashClass& c);

  // Submits one request per entry of `bytes`, all at `now`, and returns when the last one
  // completes.
  double Submit(double now, Op op, std::span<const uint64_t> bytes);
  double Sync(double now);

 private:
  FlashClass class_;
  std::vector<double> slot_free_;  // when each queue slot takes its next request
  double channel_free_ = 0;        // when the channel has moved every submitted byte
};

}  // namespace llms
