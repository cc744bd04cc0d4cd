#include "kvscope/runtime/shard_hop.hpp"

namespace kvscope {

namespace detail {

namespace {

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
    std::vector<ShardInbox*> kick;
    kick.swap(deferred_drains.inboxes);
    for (ShardInbox* inbox : kick) inbox->post_drain();
  }
};

}  // namespace

HopBatch::~HopBatch() {
  for (std::size_t i = next_; i < ops_.size(); ++i) delete ops_[i];
}

void HopBatch::complete_all() {
  ++deferred_drains.depth;
  DeferredDrainsFlush flush;
  while (next_ < ops_.size()) {
    HopOp* op = ops_[next_++];
    try {
      op->complete();
    } catch (...) {
      // Hand the rest to a fresh batch before the exception leaves run().
      if (next_ < ops_.size()) {
        HopBatch rest;
        rest.ops().assign(ops_.begin() + static_cast<std::ptrdiff_t>(next_), ops_.end());
        next_ = ops_.size();
        const asio::any_io_executor home = rest.ops().front()->home();
        asio::post(home, [batch = std::move(rest)]() mutable { batch.complete_all(); });
      }
      throw;
    }
  }
}

}  // namespace detail

ShardInbox::ShardInbox(asio::any_io_executor shard_executor)
    : executor_(std::move(shard_executor)) {}

ShardInbox::~ShardInbox() {
  for (detail::HopOp* op : pending_) delete op;
}

void ShardInbox::submit(std::unique_ptr<detail::HopOp> op) {
  bool kick = false;
  {
    std::lock_guard lock(mutex_);
    pending_.push_back(op.get());  // may throw: then nothing changed
    op.release();
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

void ShardInbox::drain() {
  {
    std::lock_guard lock(mutex_);
    spare_.swap(pending_);  // pending_ keeps the spare's capacity
    if (spare_.empty()) {
      drain_scheduled_ = false;
      return;
    }
  }
  for (detail::HopOp* op : spare_) op->run();
  bool more = false;
  {
    // Decided before the completions go out, so that callers resuming from
    // them find no drain scheduled and kick a fresh one with all they submit.
    std::lock_guard lock(mutex_);
    more = !pending_.empty();
    drain_scheduled_ = more;
  }
  post_completions();
  // Drain again later rather than looping: other work on the shard's
  // executor (the aggregator's visits, timers) gets its turn.
  if (more) post_drain();
}

void ShardInbox::post_completions() {
  // One completion batch per run of ops sharing a home executor.
  std::size_t begin = 0;
  while (begin < spare_.size()) {
    std::size_t end = begin + 1;
    while (end < spare_.size() && spare_[end]->home() == spare_[begin]->home()) ++end;
    detail::HopBatch batch;
    batch.ops().assign(spare_.begin() + static_cast<std::ptrdiff_t>(begin),
                       spare_.begin() + static_cast<std::ptrdiff_t>(end));
    // A tracked copy: the caller's io_context keeps outstanding work until
    // this post has fully returned (it signals the caller's condition
    // variable after queueing), so its run() cannot return and the context
    // be destroyed under us. (An untracked copy raced exactly so: TSan.)
    const asio::any_io_executor home = spare_[begin]->home();
    asio::post(home, [batch = std::move(batch)]() mutable { batch.complete_all(); });
    begin = end;
  }
  spare_.clear();
}

}  // namespace kvscope
