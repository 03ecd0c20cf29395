// Clock: the one source of time in llms. Durations come from a monotonic clock and dates from
// the system clock, both through this interface, so that replay and tests can run on a clock of
// their own (ManualClock) and no module re-derives seconds from std::chrono.
#pragma once

#include <atomic>
#include <cstdint>

namespace llms {

// Thread safety: every method may be called from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  // Seconds on a monotonic clock with an arbitrary origin: differences are durations.
  virtual double MonotonicSeconds() const = 0;
  // Milliseconds since the Unix epoch (dates stored with contexts).
  virtual int64_t UnixMillis() const = 0;
  // The process-wide real clock. Never null; never deleted.
  static const Clock* Real();
};

// Seconds elapsed since construction (or Restart) on `clock`, which must outlive it.
// Thread safety: none.
class Stopwatch {
 public:
  explicit Stopwatch(const Clock* clock = Clock::Real())
      : clock_(clock), start_(clock->MonotonicSeconds()) {}
  double Seconds() const { return clock_->MonotonicSeconds() - start_; }
  // The monotonic time it started at (to compare with other stopwatches of the same clock).
  double start() const { return start_; }
  const Clock* clock() const { return clock_; }
  void Restart() { start_ = clock_->MonotonicSeconds(); }

 private:
  const Clock* clock_;
  double start_;
};

// A clock that moves only when told to: deterministic durations for tests and replay.
class ManualClock final : public Clock {
 public:
  double MonotonicSeconds() const override { return seconds_.load(); }
  int64_t UnixMillis() const override {
    return static_cast<int64_t>(seconds_.load() * 1e3) + 1'700'000'000'000;
  }
  void Advance(double seconds) { seconds_.store(seconds_.load() + seconds); }

 private:
  std::atomic<double> seconds_{0};
};

}  // namespace llms
