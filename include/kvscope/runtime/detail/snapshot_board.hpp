// kvscope/runtime/detail/snapshot_board.hpp - where published snapshots go:
// the latest pointer, next_snapshot() waiters and subscribers. Internal to
// Runtime (complete here because next_snapshot is a template).
//
// Thread rules: publish() and close() from the aggregator (one thread at a
// time); everything else from any thread.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/post.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <system_error>

#include "kvscope/runtime/snapshot.hpp"

namespace kvscope {

using SnapshotPtr = std::shared_ptr<const RuntimeSnapshot>;
/// Called with each published snapshot (see Runtime::subscribe).
using SnapshotCallback = std::function<void(const SnapshotPtr&)>;
/// Called with each alert transition (see Runtime::subscribe_alerts).
using AlertCallback = std::function<void(const AlertTransition&)>;

namespace detail {

/// The latest snapshot pointer: readers never block or take a lock; the
/// single writer (the aggregator) publishes into whichever of two slots no
/// reader is copying from, then flips `current_`. A reader announces itself
/// on a slot, re-checks that the slot is still current (else backs out and
/// retries: lock-free, retrying only across a concurrent flip), copies the
/// shared_ptr and leaves. The writer waits only for readers caught mid-copy
/// on the slot it is about to reuse (two flips back).
///
/// (std::atomic<std::shared_ptr> would be shorter, but libstdc++ 12 releases
/// its internal spin bit with a relaxed store after a load, which is a data
/// race under the C++ memory model that ThreadSanitizer rightly reports.)
class LatestSnapshot {
 public:
  /// Any thread.
  SnapshotPtr load() const noexcept;
  /// One writer at a time.
  void store(SnapshotPtr snapshot) noexcept;

 private:
  SnapshotPtr slots_[2];
  mutable std::atomic<std::uint32_t> readers_[2] = {0, 0};
  std::atomic<std::uint32_t> current_{0};
};

/// One pending next_snapshot(): completed exactly once, by whoever removes
/// it from the board (publish, close or cancel).
class SnapshotWaiter {
 public:
  virtual ~SnapshotWaiter() = default;
  /// Posts the handler's completion to its executor.
  virtual void complete(std::error_code error, SnapshotPtr snapshot) = 0;
};

template <class Handler>
class SnapshotWaiterFor final : public SnapshotWaiter {
 public:
  SnapshotWaiterFor(Handler handler, asio::any_io_executor home)
      : handler_(std::move(handler)), home_(std::move(home)) {}

  void complete(std::error_code error, SnapshotPtr snapshot) override {
    auto finish = [handler = std::move(handler_), error, snapshot = std::move(snapshot)]() mutable {
      // On the handler's executor, where cancellation is emitted: no race.
      asio::get_associated_cancellation_slot(handler).clear();
      std::move(handler)(error, std::move(snapshot));
    };
    asio::post(home_, std::move(finish));
  }

 private:
  Handler handler_;
  asio::any_io_executor home_;  // tracked: the caller's run() waits for us
};

class SnapshotBoard : public std::enable_shared_from_this<SnapshotBoard> {
 public:
  /// `notifier` runs subscriber callbacks that name no executor of their own.
  explicit SnapshotBoard(asio::any_io_executor notifier) : notifier_(std::move(notifier)) {}

  SnapshotPtr latest() const noexcept { return latest_.load(); }

  /// Aggregator: makes `snapshot` the latest, completes the waiters it
  /// satisfies and hands it to every subscriber.
  void publish(SnapshotPtr snapshot);
  /// Aggregator, after the final publish: fails every waiter (and every
  /// later wait) with asio::error::operation_aborted.
  void close();

  /// A fresh id for wait() and cancel().
  std::uint64_t new_waiter_id() noexcept { return next_waiter_id_.fetch_add(1) + 1; }
  /// Waits for a snapshot with sequence > `after`; completes at once when
  /// one exists or the board is closed.
  void wait(std::uint64_t id, std::uint64_t after, std::unique_ptr<SnapshotWaiter> waiter);
  /// Fails the waiter with operation_aborted if it is still waiting.
  void cancel(std::uint64_t waiter_id);

  /// `every_snapshot`: deliver each snapshot in order (a backlog of at most
  /// kMaxBacklog, the oldest dropped and counted beyond it) instead of only
  /// the newest.
  std::uint64_t subscribe(SnapshotCallback callback, asio::any_io_executor executor,
                          bool every_snapshot = false);
  std::uint64_t subscribe(SnapshotCallback callback) {
    return subscribe(std::move(callback), notifier_);
  }
  asio::any_io_executor notifier() const { return notifier_; }
  static constexpr std::size_t kMaxBacklog = 1024;
  /// After it returns no new delivery starts; one in progress may finish.
  bool unsubscribe(std::uint64_t id);

  std::uint64_t subscriber_failures() const noexcept {
    return failures_.load(std::memory_order_relaxed);
  }
  std::uint64_t subscriber_skipped() const noexcept {
    return skipped_.load(std::memory_order_relaxed);
  }

 private:
  struct Subscriber {
    SnapshotCallback callback;
    asio::any_io_executor executor;
    bool every_snapshot = false;
    std::atomic<bool> active{true};
    std::mutex mutex;
    std::deque<SnapshotPtr> pending;  // guarded by mutex: undelivered, oldest first
    bool delivering = false;          // guarded by mutex: a delivery task is posted or running
  };
  void notify(const std::shared_ptr<Subscriber>& subscriber, const SnapshotPtr& snapshot);
  void deliver(const std::shared_ptr<Subscriber>& subscriber);

  asio::any_io_executor notifier_;
  LatestSnapshot latest_;
  std::mutex mutex_;
  std::map<std::uint64_t, std::pair<std::uint64_t, std::unique_ptr<SnapshotWaiter>>>
      waiters_;  // id -> (after, waiter); guarded by mutex_
  std::map<std::uint64_t, std::shared_ptr<Subscriber>> subscribers_;  // guarded by mutex_
  std::uint64_t next_subscriber_id_ = 1;                              // guarded by mutex_
  std::atomic<std::uint64_t> next_waiter_id_{0};
  bool closed_ = false;  // guarded by mutex_
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<std::uint64_t> skipped_{0};
};

/// Installed in a waiting handler's cancellation slot.
struct CancelSnapshotWait {
  std::weak_ptr<SnapshotBoard> board;
  std::uint64_t waiter_id;
  void operator()(asio::cancellation_type type) const {
    if (type == asio::cancellation_type::none) return;
    if (auto alive = board.lock()) alive->cancel(waiter_id);
  }
};

}  // namespace detail
}  // namespace kvscope
