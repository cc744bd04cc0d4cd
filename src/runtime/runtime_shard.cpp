#include "kvscope/runtime/detail/runtime_shard.hpp"

#include <pthread.h>
#include <sched.h>

#include <asio/post.hpp>

#include <cerrno>
#include <string>
#include <system_error>

#include "detail/thread_name.hpp"

namespace kvscope::detail {

namespace {

void pin_to_cpu(std::thread& thread, unsigned cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  const int error = pthread_setaffinity_np(thread.native_handle(), sizeof(set), &set);
  if (error != 0)
    throw std::system_error(error, std::generic_category(),
                            "kvscope: pinning a shard thread to CPU " + std::to_string(cpu));
}

/// The shard thread's loop: io_context::run() rethrows a handler's
/// exception; only the hop's own bookkeeping can throw (bad_alloc), and a
/// shard must outlive that, so it resumes running.
void run_shard(asio::io_context& io) {
  mark_shard_thread();
  for (;;) {
    try {
      io.run();
      return;  // out of work: the runtime let go of it
    } catch (...) {
    }
  }
}

}  // namespace

RuntimeShard::RuntimeShard(std::uint32_t index, const PrefixCacheConfig& cache,
                           const MetricsConfig& metrics, const BatchCollectorConfig& collector,
                           std::optional<unsigned> cpu, std::chrono::nanoseconds poll,
                           KvEventPublisher* events)
    : index_(index),
      io_(1),
      work_(asio::make_work_guard(io_)),
      inbox_(io_.get_executor(), poll),
      cache_(cache, metrics),
      levels_(metrics.window, metrics.latency_layout),
      collector_(collector),
      service_(metrics.latency_layout, kServiceSampling),
      publisher_(events),
      event_log_(events != nullptr ? std::make_unique<CacheEventLog>(cache.block_size) : nullptr),
      publish_interval_(events != nullptr ? events->config().publish_interval
                                          : std::chrono::milliseconds::max()),
      batch_bytes_(events != nullptr ? events->config().batch_bytes : SIZE_MAX),
      thread_([this] { run_shard(io_); }) {
  if (event_log_) cache_.set_event_log(event_log_.get());
  name_thread(thread_, "kvs-shard-" + std::to_string(index));
  if (cpu) {
    try {
      pin_to_cpu(thread_, *cpu);
    } catch (...) {
      work_.reset();
      thread_.join();
      throw;
    }
  }
}

RuntimeShard::~RuntimeShard() {
  auto stop_publishing = [this] { publish_timer_.cancel(); };
  asio::post(io_, std::move(stop_publishing));  // a pending timer would keep run() going
  work_.reset();
  if (thread_.joinable()) thread_.join();
}

bool RuntimeShard::record(const MetricObservation& observation) noexcept {
  if (!collector_.record(observation)) return false;
  if (collector_.waiting() < collector_.capacity() / 2 ||
      drain_requested_.exchange(true, std::memory_order_acq_rel))
    return true;
  try {
    auto drain = [this] { drain_observations(); };
    auto ignore = [](std::exception_ptr) {};  // drain_observations counts what it loses
    async_run_on(inbox_, std::move(drain), std::move(ignore));
  } catch (...) {
    // No memory for the hop: the next aggregation drains instead.
    drain_requested_.store(false, std::memory_order_release);
  }
  return true;
}

void RuntimeShard::record_service(ShardOperation kind, std::int64_t started) noexcept {
  const std::int64_t took = service_clock() - started;
  service_.service_ns[static_cast<std::size_t>(kind)].record_n(
      took > 0 ? static_cast<std::uint64_t>(took) : 0, kServiceSampling);
}

void RuntimeShard::drain_observations() {
  drain_requested_.store(false, std::memory_order_release);
  collector_.drain(levels_);
}

// Out of line: after_operation() is inlined into every hop, and a bigger
// body there changed g++'s inlining in users' code enough to raise a
// -Wmaybe-uninitialized false positive (tests/consumer at -O3).
void RuntimeShard::schedule_publication() noexcept {
  if (event_log_->bytes() >= batch_bytes_) {
    try {
      publish_events();  // the armed timer, if any, finds less or nothing
      return;
    } catch (...) {
      // No memory to queue the batch: the timer's publication tries again.
    }
  }
  if (!publish_armed_ && !event_log_->empty()) {
    arm_publication();
  }
}

void RuntimeShard::arm_publication() noexcept {
  auto publish = [this](std::error_code error) {
    publish_armed_ = false;
    if (!error) publish_events();
  };
  try {
    publish_timer_.expires_after(publish_interval_);
    publish_timer_.async_wait(std::move(publish));
    publish_armed_ = true;
  } catch (...) {
    // No memory for the timer: the operation that asked succeeded anyway;
    // the next operation (or stop()) publishes what is recorded.
  }
}

void RuntimeShard::publish_events() {
  if (event_log_ == nullptr || event_log_->empty()) return;
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  publisher_->submit(*event_log_, now);  // a full queue drops the batch (counted)
}

void RuntimeShard::publish_events_now() {
  publish_timer_.cancel();
  publish_events();
}

ShardReport RuntimeShard::report(Timestamp now) {
  drain_observations();
  ShardReport out;
  out.cache = cache_.metrics().snapshot(now);
  out.levels = levels_.snapshot(now);  // ticks the levels' windows
  out.operations = operations_;
  out.service = service_;
  out.observations_dropped = collector_.dropped();
  return out;
}

}  // namespace kvscope::detail
