// kvscope/clock.hpp - the time source of metrics, injectable.
//
// Metrics take timestamps as Timestamp (nanoseconds since the clock's own
// epoch) from a Clock. SteadyClock reads std::chrono::steady_clock (~26 ns a
// read on the reference machine: read it once per cache operation and pass
// the value down); ManualClock is set by tests for deterministic timelines.
//
// Thread rules: SteadyClock may be shared by any threads. ManualClock may be
// read from many threads but set from one at a time (reads and writes are
// relaxed atomics: no ordering with other memory is implied).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace kvscope {

/// Nanoseconds since the epoch of the Clock that produced it.
using Timestamp = std::chrono::nanoseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  /// Monotonic (never decreases). Cost: one clock read.
  virtual Timestamp now() const noexcept = 0;
};

/// std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  Timestamp now() const noexcept override {
    return std::chrono::duration_cast<Timestamp>(
        std::chrono::steady_clock::now().time_since_epoch());
  }
  /// A process-wide instance, the default of every metric.
  static const SteadyClock& instance() noexcept;
};

/// A clock that only moves when told to. Starts at `start`.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Timestamp start = Timestamp{0}) : now_(start.count()) {}
  Timestamp now() const noexcept override {
    return Timestamp{now_.load(std::memory_order_relaxed)};
  }
  /// Moves the clock forward. Precondition: delta >= 0 (a clock never goes back).
  void advance(Timestamp delta) noexcept {
    now_.fetch_add(delta.count(), std::memory_order_relaxed);
  }
  /// Precondition: t >= now().
  void set(Timestamp t) noexcept { now_.store(t.count(), std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> now_;
};

}  // namespace kvscope
