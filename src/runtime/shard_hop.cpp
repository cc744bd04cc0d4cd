#include "kvscope/runtime/shard_hop.hpp"

namespace kvscope {

namespace detail {

HopBatch::~HopBatch() {
  for (std::size_t i = next_; i < ops_.size(); ++i) delete ops_[i];
}

void HopBatch::complete_all() {
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
  bool post_drain = false;
  {
    std::lock_guard lock(mutex_);
    pending_.push_back(op.get());  // may throw: then nothing changed
    op.release();
    post_drain = !drain_scheduled_;
    drain_scheduled_ = true;
  }
  if (post_drain) asio::post(executor_, [this] { drain(); });
}

void ShardInbox::drain() {
  {
    std::lock_guard lock(mutex_);
    if (pending_.empty()) {
      drain_scheduled_ = false;
      return;
    }
    spare_.swap(pending_);  // pending_ keeps the spare's capacity
  }
  for (detail::HopOp* op : spare_) op->run();
  ops_run_ += spare_.size();

  // One completion batch per run of ops sharing a home executor.
  std::size_t begin = 0;
  while (begin < spare_.size()) {
    std::size_t end = begin + 1;
    while (end < spare_.size() && spare_[end]->home() == spare_[begin]->home()) ++end;
    detail::HopBatch batch;
    batch.ops().assign(spare_.begin() + static_cast<std::ptrdiff_t>(begin),
                       spare_.begin() + static_cast<std::ptrdiff_t>(end));
    const asio::any_io_executor home = spare_[begin]->home();
    asio::post(home, [batch = std::move(batch)]() mutable { batch.complete_all(); });
    begin = end;
  }
  spare_.clear();
  // Drain again later rather than looping: other work on the shard's
  // executor (the aggregator's visits, timers) gets its turn.
  asio::post(executor_, [this] { drain(); });
}

}  // namespace kvscope
