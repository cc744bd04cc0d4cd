// kvscope/runtime/shard_hop.hpp - the one way kvscope runs work on a shard:
// co_await async_run_on(inbox, fn, asio::use_awaitable).
//
// A ShardInbox fronts one shard's executor (an io_context run by one
// thread, or a strand). async_run_on puts `fn` in the inbox; the shard runs
// it and the caller's handler completes on the handler's associated
// executor (for a coroutine awaiting with asio::use_awaitable: its own
// executor, whatever io_context or strand that is). Completion signature:
//     void(std::exception_ptr, R)      R = the result of fn()   (non-void)
//     void(std::exception_ptr)         when fn returns void
// An exception thrown by fn is caught on the shard and delivered in the
// exception_ptr (use_awaitable rethrows it in the caller); R is then a
// placeholder (R{} or, for Result<T>, Status::not_running) not to be used.
//
// Why an inbox rather than one asio::post per leg: on a 2-vCPU VM a post
// into another thread's io_context contends on that scheduler's mutex and
// often pays a futex wake-up (about 1.4 us per hop measured); the naive
// `co_await asio::co_spawn(strand, op, use_awaitable)` is slower still. The
// inbox batches both legs: callers append to a vector under a short lock
// and post a drain only when none is pending; the drain runs everything
// waiting and posts completion batches per caller executor, every ~2 us of
// shard time so that callers on other threads resume while the shard goes
// on (callers on shard threads, busy with their own shard, get theirs at
// the end of the drain: mark_shard_thread()). Operations
// submitted while a thread completes a batch (coroutines resuming and
// awaiting their next operation) kick the shard once, when the batch ends:
// the shard then drains them together instead of one by one.
// Consequence: never block inside a completion handler waiting for another
// hop (e.g. on a use_future), since its drain is not kicked until the handler returns.
// BM_AwaitOnShard vs BM_CoSpawnOnStrand in docs/performance.md.
//
// Guarantees (each has a test in tests/shard_hop_test.cpp):
//  - fn runs on the shard's executor, exactly once, in submission order per
//    submitting thread; the handler runs on its associated executor (the
//    shard's, for handlers without one), never inline in async_run_on.
//  - Only post is used, never dispatch: hopping to the executor you are on
//    does not recurse.
//  - The caller's executor has outstanding work from initiation to
//    completion, so its io_context::run() does not return meanwhile.
//  - Work never run (the inbox destroyed first) or never completed (the
//    caller's io_context destroyed first) is destroyed with its handler:
//    for a coroutine, its frame is destroyed; nothing leaks.
//  - Not cancellable: once submitted, fn runs. Cancellation slots are left
//    alone. fn must be move-constructible; whatever it references must
//    outlive the operation. An exception thrown by a completion handler
//    propagates out of the caller's run() as usual; the rest of its batch
//    is re-posted first.
//
// Cost per hop: an op from a per-thread free list, a lock/unlock on the
// caller side, a virtual call on each side; posts and wake-ups are shared by
// a batch.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "kvscope/result.hpp"

namespace kvscope {

namespace detail {

template <class T>
struct IsResult : std::false_type {};
template <class T>
struct IsResult<Result<T>> : std::true_type {};

/// The value delivered beside an exception (never to be used by the caller).
template <class R>
R placeholder_result() {
  if constexpr (IsResult<R>::value) {
    return R(Status::not_running);
  } else {
    return R{};
  }
}

template <class R>
struct HopSignatureOf {
  using type = void(std::exception_ptr, R);
};
template <>
struct HopSignatureOf<void> {
  using type = void(std::exception_ptr);
};
template <class R>
using HopSignature = typename HopSignatureOf<R>::type;

/// Where `handler` completes, with outstanding work tracked until then: its
/// associated executor, or `fallback` when it has none or has one that is
/// not an I/O executor (use_future's inline promise executor).
template <class Handler>
asio::any_io_executor tracked_home(const Handler& handler, const asio::any_io_executor& fallback) {
  auto associated = asio::get_associated_executor(handler, fallback);
  asio::any_io_executor home = fallback;
  if constexpr (std::is_constructible_v<asio::any_io_executor, decltype(associated)>) {
    home = std::move(associated);
  }
  return asio::prefer(home, asio::execution::outstanding_work.tracked);
}

/// Marks the calling thread as one that runs a shard's executor (the
/// runtime's shard threads): it is busy draining its own inbox, so
/// completions for callers on it wait for the end of a drain.
void mark_shard_thread() noexcept;
/// Whether mark_shard_thread() was called on this thread.
bool on_shard_thread() noexcept;

/// One submitted operation: runs on the shard, completes at home.
class HopOp {
 public:
  explicit HopOp(asio::any_io_executor home)
      : home_(std::move(home)), caller_on_shard_thread_(on_shard_thread()) {}
  virtual ~HopOp() = default;
  /// Ops come from per-thread free lists (by 64-byte size class): an op is
  /// made on the caller's thread and usually freed there when it completes,
  /// so after warm-up a hop takes no memory from the heap. Not pooled under
  /// AddressSanitizer, which then still sees a use after free.
  static void* operator new(std::size_t size);
  static void operator delete(void* block, std::size_t size) noexcept;
  HopOp(const HopOp&) = delete;
  HopOp& operator=(const HopOp&) = delete;

  /// On the shard: runs the work and stores its outcome.
  virtual void run() noexcept = 0;
  /// On the home executor: destroys this op, then invokes the handler.
  virtual void complete() = 0;
  /// The caller's executor, with outstanding work tracked.
  const asio::any_io_executor& home() const noexcept { return home_; }
  /// Submitted from a shard thread (mark_shard_thread()).
  bool caller_on_shard_thread() const noexcept { return caller_on_shard_thread_; }

 private:
  asio::any_io_executor home_;
  bool caller_on_shard_thread_;
};

template <class Handler, class Fn>
class HopOpFor final : public HopOp {
  using R = std::invoke_result_t<Fn&>;
  using Stored = std::conditional_t<std::is_void_v<R>, bool, R>;

 public:
  HopOpFor(asio::any_io_executor home, Handler handler, Fn fn)
      : HopOp(std::move(home)), handler_(std::move(handler)), fn_(std::move(fn)) {}

  void run() noexcept override {
    try {
      if constexpr (std::is_void_v<R>) {
        fn_();
        result_.emplace(true);
      } else {
        result_.emplace(fn_());
      }
    } catch (...) {
      failure_ = std::current_exception();
    }
  }

  void complete() override {
    // Move everything out first: the op (and its tracked work) is released
    // before the upcall, and the handler may start the next op at once.
    Handler handler = std::move(handler_);
    std::exception_ptr failure = std::move(failure_);
    if constexpr (std::is_void_v<R>) {
      delete this;
      std::move(handler)(failure);
    } else {
      R result = result_ ? std::move(*result_) : placeholder_result<R>();
      delete this;
      std::move(handler)(failure, std::move(result));
    }
  }

 private:
  Handler handler_;
  Fn fn_;
  std::exception_ptr failure_;
  std::optional<Stored> result_;
};

/// Ops owned between two steps of the hand-off; deletes what was not
/// consumed. Up to kInline ops live inside the batch (a batch rides in a
/// posted handler, whose memory asio recycles), more in a vector.
class HopBatch {
 public:
  static constexpr std::size_t kInline = 16;

  HopBatch() = default;
  HopBatch(HopBatch&& other) noexcept;
  HopBatch& operator=(HopBatch&&) = delete;
  ~HopBatch();

  /// Takes ownership of the ops [first, last), which must be empty before.
  /// Throws std::bad_alloc past kInline ops (then it owns none of them).
  void assign(HopOp* const* first, HopOp* const* last);
  std::size_t size() const noexcept { return size_; }
  HopOp* front() const noexcept { return data()[0]; }
  /// Completes every op from the first unconsumed one. If a handler throws,
  /// the rest are re-posted to their home before the exception propagates.
  void complete_all();

 private:
  HopOp* const* data() const noexcept {
    return overflow_.empty() ? inline_.data() : overflow_.data();
  }

  std::array<HopOp*, kInline> inline_{};
  std::vector<HopOp*> overflow_;  // used instead of inline_ past kInline ops
  std::size_t size_ = 0;
  std::size_t next_ = 0;
};

}  // namespace detail

/// One shard's queue of submitted operations. submit() from any thread; the
/// drain runs on `shard_executor`. The executor's context must outlive the
/// inbox, and the inbox must outlive every operation submitted to it
/// (the runtime stops and drains before destroying it).
///
/// A drain posts its completions in chunks of about 2 us of shard time, so
/// that callers resume (and submit their next operations) while the shard
/// runs the rest. `poll`: after a drain leaves the inbox empty, the shard's
/// thread keeps polling it this long before returning to its executor,
/// which may then sleep. An operation submitted within the window finds the
/// shard awake: no wake-up system call for the submitter, no scheduling
/// delay for the shard; the price is up to `poll` of CPU per idle moment,
/// which only pays where the shard has a core to itself. 0 never polls.
class ShardInbox {
 public:
  explicit ShardInbox(asio::any_io_executor shard_executor,
                      std::chrono::nanoseconds poll = std::chrono::nanoseconds(0));
  /// Destroys ops never run (with their handlers).
  ~ShardInbox();
  ShardInbox(const ShardInbox&) = delete;
  ShardInbox& operator=(const ShardInbox&) = delete;

  const asio::any_io_executor& executor() const noexcept { return executor_; }

  /// Any thread. Takes ownership of `op`; posts a drain unless one is pending.
  void submit(std::unique_ptr<detail::HopOp> op);

  /// Posts a drain to the shard (internal: submit and completion batches).
  void post_drain() noexcept;

 private:
  void drain();
  void run_and_complete();
  void post_early(std::size_t last);
  void post_completions(std::vector<detail::HopOp*>& ops, std::size_t& next, std::size_t last);
  bool poll_for_work() const noexcept;

  asio::any_io_executor executor_;
  std::mutex mutex_;
  std::vector<detail::HopOp*> pending_;   // guarded by mutex_
  bool drain_scheduled_ = false;          // guarded by mutex_
  std::atomic<bool> has_pending_{false};  // pending_ is not empty: a hint for polling
  std::chrono::nanoseconds poll_;
  std::vector<detail::HopOp*> spare_;  // shard thread only: swapped with pending_ (capacity kept)
  // Shard thread only: the current drain's ops (spare_), how many have run
  // and how many have been handed on (posted, or moved to deferred_, the
  // completions held back for callers on shard threads); kept across an
  // exception so that the next drain resumes.
  std::size_t ran_ = 0;
  std::size_t posted_ = 0;
  std::vector<detail::HopOp*> deferred_;
  std::size_t deferred_posted_ = 0;
};

/// Runs `fn()` on `inbox`'s shard and completes `token` on the caller's
/// associated executor (falling back to the shard's executor for handlers
/// without one, or with one that is not an I/O executor, like use_future's). Any thread. Throws
/// std::bad_alloc before submitting if the op cannot be allocated.
template <class Fn, class CompletionToken>
auto async_run_on(ShardInbox& inbox, Fn fn, CompletionToken&& token) {
  using R = std::invoke_result_t<Fn&>;
  static_assert(!std::is_reference_v<R>, "async_run_on: fn must return a value, not a reference");
  auto initiate = [](auto handler, ShardInbox* target, Fn work) {
    using Handler = decltype(handler);
    asio::any_io_executor home = detail::tracked_home(handler, target->executor());
    target->submit(std::make_unique<detail::HopOpFor<Handler, Fn>>(
        std::move(home), std::move(handler), std::move(work)));
  };
  return asio::async_initiate<CompletionToken, detail::HopSignature<R>>(std::move(initiate), token,
                                                                        &inbox, std::move(fn));
}

}  // namespace kvscope
