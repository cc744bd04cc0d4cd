#include "kvscope/runtime/detail/snapshot_board.hpp"

#include <asio/error.hpp>

#include <thread>
#include <vector>

namespace kvscope::detail {

// All atomics here are sequentially consistent: the argument that a reader
// never copies a slot the writer is assigning rests on one total order of
// the flip, the announcements and the re-checks.
SnapshotPtr LatestSnapshot::load() const noexcept {
  for (;;) {
    const std::uint32_t slot = current_.load();
    readers_[slot].fetch_add(1);
    if (current_.load() == slot) {  // still current: the writer will not touch it now
      SnapshotPtr out = slots_[slot];
      readers_[slot].fetch_sub(1);
      return out;
    }
    readers_[slot].fetch_sub(1);  // flipped meanwhile: retry on the new slot
  }
}

void LatestSnapshot::store(SnapshotPtr snapshot) noexcept {
  const std::uint32_t spare = 1 - current_.load();
  while (readers_[spare].load() != 0) std::this_thread::yield();  // a reader mid-copy
  slots_[spare] = std::move(snapshot);  // the value two publications back is released here
  current_.store(spare);
}

void SnapshotBoard::publish(SnapshotPtr snapshot) {
  latest_.store(snapshot);
  std::vector<std::unique_ptr<SnapshotWaiter>> satisfied;
  std::vector<std::shared_ptr<Subscriber>> subscribers;
  {
    std::lock_guard lock(mutex_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.first < snapshot->sequence) {
        satisfied.push_back(std::move(it->second.second));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
    subscribers.reserve(subscribers_.size());
    for (const auto& [id, subscriber] : subscribers_) subscribers.push_back(subscriber);
  }
  // Outside the lock: completions and notifications only post.
  for (auto& waiter : satisfied) waiter->complete({}, snapshot);
  for (const auto& subscriber : subscribers) notify(subscriber, snapshot);
}

void SnapshotBoard::close() {
  std::map<std::uint64_t, std::pair<std::uint64_t, std::unique_ptr<SnapshotWaiter>>> failed;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    failed.swap(waiters_);
  }
  for (auto& [id, entry] : failed) entry.second->complete(asio::error::operation_aborted, nullptr);
}

void SnapshotBoard::wait(std::uint64_t id, std::uint64_t after,
                         std::unique_ptr<SnapshotWaiter> waiter) {
  SnapshotPtr current;
  std::error_code error;
  {
    std::lock_guard lock(mutex_);
    current = latest();  // under the lock: publish cannot slip between check and insert
    const bool ready = current != nullptr && current->sequence > after;
    if (!ready && !closed_) {
      waiters_.emplace(id, std::make_pair(after, std::move(waiter)));
      return;
    }
    if (!ready) error = asio::error::operation_aborted;
  }
  waiter->complete(error, error ? nullptr : std::move(current));
}

void SnapshotBoard::cancel(std::uint64_t waiter_id) {
  std::unique_ptr<SnapshotWaiter> cancelled;
  {
    std::lock_guard lock(mutex_);
    auto it = waiters_.find(waiter_id);
    if (it == waiters_.end()) return;  // already completed
    cancelled = std::move(it->second.second);
    waiters_.erase(it);
  }
  cancelled->complete(asio::error::operation_aborted, nullptr);
}

std::uint64_t SnapshotBoard::subscribe(SnapshotCallback callback, asio::any_io_executor executor,
                                       bool every_snapshot) {
  auto subscriber = std::make_shared<Subscriber>();
  subscriber->callback = std::move(callback);
  subscriber->executor = std::move(executor);
  subscriber->every_snapshot = every_snapshot;
  std::lock_guard lock(mutex_);
  const std::uint64_t id = next_subscriber_id_++;
  subscribers_.emplace(id, std::move(subscriber));
  return id;
}

bool SnapshotBoard::unsubscribe(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  auto it = subscribers_.find(id);
  if (it == subscribers_.end()) return false;
  it->second->active.store(false, std::memory_order_release);
  subscribers_.erase(it);
  return true;
}

void SnapshotBoard::notify(const std::shared_ptr<Subscriber>& subscriber,
                           const SnapshotPtr& snapshot) {
  bool post_delivery = false;
  {
    std::lock_guard lock(subscriber->mutex);
    auto& pending = subscriber->pending;
    const std::size_t room = subscriber->every_snapshot ? kMaxBacklog : 1;
    for (; pending.size() >= room; pending.pop_front())
      skipped_.fetch_add(1, std::memory_order_relaxed);
    pending.push_back(snapshot);
    post_delivery = !subscriber->delivering;
    subscriber->delivering = true;
  }
  if (!post_delivery) return;
  auto deliver_all = [self = shared_from_this(), subscriber] { self->deliver(subscriber); };
  asio::post(subscriber->executor, std::move(deliver_all));
}

void SnapshotBoard::deliver(const std::shared_ptr<Subscriber>& subscriber) {
  for (;;) {
    SnapshotPtr next;
    {
      std::lock_guard lock(subscriber->mutex);
      if (subscriber->pending.empty()) {
        subscriber->delivering = false;
        return;
      }
      next = std::move(subscriber->pending.front());
      subscriber->pending.pop_front();
    }
    if (!subscriber->active.load(std::memory_order_acquire)) continue;  // drop: unsubscribed
    try {
      subscriber->callback(next);
    } catch (...) {
      failures_.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

}  // namespace kvscope::detail
