#include "kvscope/runtime/shard_hop.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <new>
#include <stdexcept>
#include <vector>

namespace kvscope {

namespace detail {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPoolOps = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kPoolOps = false;
#else
constexpr bool kPoolOps = true;
#endif
#else
constexpr bool kPoolOps = true;
#endif

/// Free op blocks of this thread, by size class (64-byte steps up to 1 KiB;
/// larger ops use the heap directly). At most kKeep blocks a class are kept.
class OpFreeLists {
 public:
  static constexpr std::size_t kStep = 64;
  static constexpr std::size_t kClasses = 16;
  static constexpr std::size_t kKeep = 512;

  OpFreeLists() noexcept { destroyed_ = false; }
  ~OpFreeLists() {
    destroyed_ = true;
    for (auto& list : lists_)
      for (void* block : list) ::operator delete(block);
  }
  /// True once this thread's lists are gone (thread exit): ops freed later
  /// go back to the heap. Constant-initialised, so asking is always safe.
  static bool destroyed() noexcept { return destroyed_; }

  static std::size_t size_class(std::size_t size) noexcept { return (size + kStep - 1) / kStep; }
  void* take(std::size_t cls) noexcept {
    auto& list = lists_[cls - 1];
    if (list.empty()) return nullptr;
    void* block = list.back();
    list.pop_back();
    return block;
  }
  /// False when the block was not kept (the list is full or cannot grow).
  bool keep(std::size_t cls, void* block) noexcept {
    auto& list = lists_[cls - 1];
    if (list.size() >= kKeep) return false;
    try {
      if (list.capacity() == 0) list.reserve(kKeep);
      list.push_back(block);
      return true;
    } catch (...) {
      return false;
    }
  }

 private:
  static thread_local bool destroyed_;
  std::array<std::vector<void*>, kClasses> lists_;
};
thread_local bool OpFreeLists::destroyed_ = false;
thread_local OpFreeLists op_free_lists;

/// Drain posts deferred while this thread completes hop batches: a caller
/// that resumes k coroutines, each submitting its next operation, kicks
/// the shard once at the end with all k instead of k times with one.
struct DeferredDrains {
  int depth = 0;  // nesting of complete_all() on this thread
  std::vector<ShardInbox*> inboxes;
};
thread_local DeferredDrains deferred_drains;

/// Ends a completion batch: at the outermost level, kicks every inbox that
/// received work during it.
struct DeferredDrainsFlush {
  ~DeferredDrainsFlush() {
    if (--deferred_drains.depth > 0) return;
    // post_drain() only posts (it never submits), so the list cannot grow
    // meanwhile; clearing it keeps its capacity for the next batch.
    for (ShardInbox* inbox : deferred_drains.inboxes) inbox->post_drain();
    deferred_drains.inboxes.clear();
  }
};

thread_local bool this_thread_runs_a_shard = false;

}  // namespace

void mark_shard_thread() noexcept { this_thread_runs_a_shard = true; }
bool on_shard_thread() noexcept { return this_thread_runs_a_shard; }

void* HopOp::operator new(std::size_t size) {
  const std::size_t cls = OpFreeLists::size_class(size);
  if (!kPoolOps || cls > OpFreeLists::kClasses || OpFreeLists::destroyed())
    return ::operator new(size);
  if (void* block = op_free_lists.take(cls)) return block;
  return ::operator new(cls* OpFreeLists::kStep);
}

void HopOp::operator delete(void* block, std::size_t size) noexcept {
  const std::size_t cls = OpFreeLists::size_class(size);
  if (kPoolOps && cls <= OpFreeLists::kClasses && !OpFreeLists::destroyed() &&
      op_free_lists.keep(cls, block))
    return;
  ::operator delete(block);
}

HopBatch::HopBatch(HopBatch&& other) noexcept
    : inline_(other.inline_),
      overflow_(std::move(other.overflow_)),
      size_(other.size_),
      next_(other.next_) {
  other.overflow_.clear();
  other.size_ = 0;
  other.next_ = 0;
}

HopBatch::~HopBatch() {
  for (std::size_t i = next_; i < size_; ++i) delete data()[i];
}

void HopBatch::assign(HopOp* const* first, HopOp* const* last) {
  const auto n = static_cast<std::size_t>(last - first);
  if (n > kInline) {
    overflow_.assign(first, last);  // may throw: nothing owned yet
  } else {
    std::copy(first, last, inline_.begin());
  }
  size_ = n;
  next_ = 0;
}

void HopBatch::complete_all() {
  ++deferred_drains.depth;
  DeferredDrainsFlush flush;
  while (next_ < size_) {
    HopOp* op = data()[next_++];
    try {
      op->complete();
    } catch (...) {
      // Hand the rest to a fresh batch before the exception leaves run().
      if (next_ < size_) {
        HopBatch rest;
        rest.assign(data() + next_, data() + size_);
        next_ = size_;
        const asio::any_io_executor home = rest.front()->home();
        asio::post(home, [batch = std::move(rest)]() mutable { batch.complete_all(); });
      }
      throw;
    }
  }
}

}  // namespace detail

ShardInbox::ShardInbox(asio::any_io_executor shard_executor, std::chrono::nanoseconds poll)
    : executor_(std::move(shard_executor)), poll_(poll) {
  if (poll.count() < 0) throw std::invalid_argument("kvscope: ShardInbox poll must be >= 0");
}

ShardInbox::~ShardInbox() {
  for (detail::HopOp* op : pending_) delete op;
  // An interrupted drain never resumed: what it had not handed on.
  for (std::size_t i = posted_; i < spare_.size(); ++i) delete spare_[i];
  for (std::size_t i = deferred_posted_; i < deferred_.size(); ++i) delete deferred_[i];
}

void ShardInbox::submit(std::unique_ptr<detail::HopOp> op) {
  bool kick = false;
  {
    std::lock_guard lock(mutex_);
    pending_.push_back(op.get());  // may throw: then nothing changed
    op.release();
    has_pending_.store(true, std::memory_order_relaxed);
    kick = !drain_scheduled_;
    drain_scheduled_ = true;
  }
  if (!kick) return;
  if (detail::deferred_drains.depth > 0) {
    try {
      detail::deferred_drains.inboxes.push_back(this);
      return;
    } catch (...) {  // no memory to defer: kick now
    }
  }
  post_drain();
}

void ShardInbox::post_drain() noexcept {
  try {
    asio::post(executor_, [this] { drain(); });
  } catch (...) {
    // No memory for the post: let the next submit try again. (The ops
    // already waiting go with it.)
    std::lock_guard lock(mutex_);
    drain_scheduled_ = false;
  }
}

// A drain that an exception interrupts (no memory for a completion batch or
// a post) resumes where it stopped: the ops it had not run or completed stay
// in spare_ and deferred_ with their cursors, the drain re-posts itself
// before the exception leaves, and the next drain finds spare_ non-empty.
void ShardInbox::drain() {
  if (spare_.empty()) {
    std::lock_guard lock(mutex_);
    spare_.swap(pending_);  // pending_ keeps the spare's capacity
    has_pending_.store(false, std::memory_order_relaxed);
    if (spare_.empty()) {
      drain_scheduled_ = false;
      return;
    }
    ran_ = 0;
    posted_ = 0;
  }
  try {
    run_and_complete();
  } catch (...) {
    post_drain();  // resume later; if even that fails, the next submit kicks it
    throw;
  }
}

void ShardInbox::run_and_complete() {
  // Completions go out in chunks of about kCompletionChunk of shard time:
  // the callers resume their coroutines (and queue their next operations)
  // while the shard runs the rest, instead of the two taking turns, each
  // asleep while the other works. Cheap operations still share one post.
  // Callers on shard threads are busy with their own shard: theirs wait
  // for the end of the drain (posting them early measured 10% slower on
  // kvscope bench, whose clients run on the shard threads).
  constexpr auto kCompletionChunk = std::chrono::microseconds(2);
  auto chunk_start = std::chrono::steady_clock::now();
  while (ran_ < spare_.size()) {
    spare_[ran_++]->run();
    if (ran_ == spare_.size()) break;  // the last chunk goes after the decision below
    const auto now = std::chrono::steady_clock::now();
    if (now - chunk_start < kCompletionChunk) continue;
    post_early(ran_);
    chunk_start = now;
  }
  bool more = false;
  {
    // Decided before the last completions go out, so that callers resuming
    // from them find no drain scheduled and kick a fresh one with all they
    // submit; unless the shard polls: then the drain stays scheduled and
    // they only queue.
    std::lock_guard lock(mutex_);
    more = !pending_.empty();
    if (more || poll_.count() == 0) drain_scheduled_ = more;
  }
  post_completions(deferred_, deferred_posted_, deferred_.size());
  deferred_.clear();
  deferred_posted_ = 0;
  post_completions(spare_, posted_, spare_.size());
  spare_.clear();
  if (!more && poll_.count() == 0) return;
  if (!more && poll_for_work()) {
    more = true;  // the drain is still scheduled: nobody else kicked
  } else if (!more) {
    std::lock_guard lock(mutex_);
    more = !pending_.empty();  // submitted after the poll gave up
    drain_scheduled_ = more;
  }
  // Drain again later rather than looping: other work on the shard's
  // executor (the aggregator's visits, timers) gets its turn.
  if (more) post_drain();
}

// Spins (with the CPU's pause hint) until an operation is queued or `poll_`
// has passed. Reads the clock every 32 spins.
bool ShardInbox::poll_for_work() const noexcept {
  const auto deadline = std::chrono::steady_clock::now() + poll_;
  for (;;) {
    for (int spin = 0; spin < 32; ++spin) {
      if (has_pending_.load(std::memory_order_relaxed)) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

// Posts the completions of spare_[posted_, last) except those of callers on
// shard threads, which join deferred_ (kept in order, and posted before any
// later op of theirs). Advances posted_ past what it handed on.
void ShardInbox::post_early(std::size_t last) {
  while (posted_ < last) {
    if (spare_[posted_]->caller_on_shard_thread()) {
      deferred_.push_back(spare_[posted_]);  // may throw: posted_ stays
      ++posted_;
      continue;
    }
    std::size_t end = posted_;
    while (end < last && !spare_[end]->caller_on_shard_thread()) ++end;
    post_completions(spare_, posted_, end);
  }
}

// Posts ops[next, last) as completion batches, one per run of ops sharing a
// home executor, advancing `next` past each batch as the batch takes its
// ops over. If a post throws, that batch's ops are destroyed with it (as
// work never completed is, shard_hop.hpp); `next` is already past them.
void ShardInbox::post_completions(std::vector<detail::HopOp*>& ops, std::size_t& next,
                                  std::size_t last) {
  while (next < last) {
    std::size_t end = next + 1;
    while (end < last && ops[end]->home() == ops[next]->home()) ++end;
    detail::HopBatch batch;
    batch.assign(ops.data() + next, ops.data() + end);  // may throw: nothing owned yet
    // A tracked copy: the caller's io_context keeps outstanding work until
    // this post has fully returned (it signals the caller's condition
    // variable after queueing), so its run() cannot return and the context
    // be destroyed under us. (An untracked copy raced exactly so: TSan.)
    const asio::any_io_executor home = ops[next]->home();
    next = end;
    asio::post(home, [batch = std::move(batch)]() mutable { batch.complete_all(); });
  }
}

}  // namespace kvscope
