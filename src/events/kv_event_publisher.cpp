// ZeroMQ (libzmq3-dev) through cppzmq (cppzmq-dev): the routers subscribe
// with ZeroMQ, so the publisher speaks it natively rather than re-framing
// its wire protocol by hand.
#include "kvscope/events/kv_event_publisher.hpp"

#include <cstdlib>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "detail/thread_name.hpp"
#include "events/kv_event_encoder.hpp"

namespace kvscope {

namespace {

/// How long the publisher thread sleeps when idle before it looks at the
/// replay socket again: the longest a replay request waits.
constexpr auto kReplayPoll = std::chrono::milliseconds(2);
/// Replay requests answered per wake-up, so a burst of them cannot hold
/// back live batches for long.
constexpr int kReplaysPerWake = 16;
/// Emptied logs kept for reuse (about one per shard is in flight at once).
constexpr std::size_t kSpareLogs = 16;

/// ZeroMQ's deallocator for a payload msgpack::sbuffer allocated with malloc.
void free_payload(void* data, void* /*hint*/) { std::free(data); }

[[noreturn]] void bad_endpoint(const char* option, const std::string& endpoint, const char* verb,
                               const zmq::error_t& e) {
  throw std::invalid_argument(std::string("kvscope: KvEventsConfig.") + option + ": cannot " +
                              verb + " '" + endpoint + "': " + e.what());
}

}  // namespace

struct KvEventPublisher::Sockets {
  zmq::context_t context{1};
  zmq::socket_t pub{context, zmq::socket_type::pub};
  std::optional<zmq::socket_t> router;
  std::deque<std::pair<std::uint64_t, zmq::message_t>> kept;  // for replay, oldest first
  std::uint64_t kept_bytes = 0;                               // payload bytes in `kept`
  std::uint64_t next_seq = 0;
};

KvEventPublisher::KvEventPublisher(KvEventsConfig config)
    : config_((config.validate(), std::move(config))), sockets_(std::make_unique<Sockets>()) {
  Sockets& s = *sockets_;
  s.pub.set(zmq::sockopt::sndhwm, config_.hwm);
  const int linger_ms = static_cast<int>(config_.linger.count());
  s.pub.set(zmq::sockopt::linger, linger_ms);
  const std::string pub = config_.pub_endpoint();
  if (binds(pub)) {
    try {
      s.pub.bind(pub);
    } catch (const zmq::error_t& e) {
      bad_endpoint("endpoint", pub, "bind", e);
    }
  } else {
    try {
      s.pub.connect(pub);
    } catch (const zmq::error_t& e) {
      bad_endpoint("endpoint", pub, "connect to", e);
    }
  }
  endpoint_ = s.pub.get(zmq::sockopt::last_endpoint);
  if (const std::string router = config_.router_endpoint(); !router.empty()) {
    s.router.emplace(s.context, zmq::socket_type::router);
    s.router->set(zmq::sockopt::linger, linger_ms);
    try {
      s.router->bind(router);
    } catch (const zmq::error_t& e) {
      bad_endpoint("replay_endpoint", router, "bind", e);
    }
    replay_endpoint_ = s.router->get(zmq::sockopt::last_endpoint);
  }
  thread_ = std::thread([this] { run(); });
  detail::name_thread(thread_, "kvs-events");
}

KvEventPublisher::~KvEventPublisher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

bool KvEventPublisher::submit(CacheEventLog& log, double ts) {
  if (log.empty()) return true;
  const std::uint32_t block_size = log.block_size();
  // The groups travel with the cache, not the log: copied (no allocation).
  std::array<KvCacheGroupConfig, kMaxKvCacheGroups> groups{};
  const auto group_count = log.groups().size();
  std::copy(log.groups().begin(), log.groups().end(), groups.begin());
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= config_.queue_batches || stopping_) {
      ++stats_.batches_dropped;
      log.clear();
      return false;
    }
    queue_.emplace_back();  // may throw bad_alloc: `log` is untouched then
    queue_.back().log = std::move(log);
    queue_.back().ts = ts;
    ++submitted_;
    if (!spare_logs_.empty()) {
      log = std::move(spare_logs_.back());
      spare_logs_.pop_back();
    }
  }
  log.clear();                     // moved from or spare: empty; reset the run state too
  log.set_block_size(block_size);  // a spare may come from another cache
  log.set_groups(std::span<const KvCacheGroupConfig>(groups).first(group_count));
  wake_.notify_one();
  return true;
}

void KvEventPublisher::flush() {
  std::unique_lock lock(mutex_);
  const std::uint64_t target = submitted_;
  drained_.wait(lock, [&] { return handled_ >= target; });
}

KvEventStats KvEventPublisher::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void KvEventPublisher::run() {
  std::deque<Pending> work;
  for (;;) {
    bool stop = false;
    {
      std::unique_lock lock(mutex_);
      const auto ready = [&] { return stopping_ || !queue_.empty(); };
      // With a replay socket, wake now and then to answer requests; without
      // one there is nothing to do until a batch or stop arrives.
      if (sockets_->router) {
        wake_.wait_for(lock, kReplayPoll, ready);
      } else {
        wake_.wait(lock, ready);
      }
      work.swap(queue_);
      stop = stopping_;
    }
    for (Pending& batch : work) send(batch);
    if (!work.empty()) {
      std::lock_guard lock(mutex_);
      handled_ += work.size();
      for (Pending& batch : work) {  // submit() clears a spare as it hands it out
        if (spare_logs_.size() >= kSpareLogs) break;
        spare_logs_.push_back(std::move(batch.log));
      }
      drained_.notify_all();
    }
    work.clear();
    serve_replay();
    if (stop) {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) break;
    }
  }
}

void KvEventPublisher::send(Pending& batch) {
  Sockets& s = *sockets_;
  // Encoded into a malloc'd buffer that ZeroMQ then owns (no copy), shared
  // with the replay ring by reference count.
  msgpack::sbuffer buffer(detail::encoded_size_estimate(batch.log));
  const KvEventCounts counts = detail::encode_kv_event_batch_into(
      buffer, batch.log, batch.ts, config_.dp_rank, config_.format, config_.hash_encoding);
  const std::size_t size = buffer.size();
  zmq::message_t payload(buffer.release(), size, &free_payload);
  zmq::message_t kept;
  if (s.router) kept.copy(payload);
  const std::uint64_t seq = s.next_seq++;
  const auto seq_bytes = seq_frame(seq);
  try {
    // PUB never blocks: past the high-water mark ZeroMQ drops the message.
    s.pub.send(zmq::buffer(config_.topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    s.pub.send(zmq::buffer(seq_bytes), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    s.pub.send(payload, zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    // A PUB socket fails a send only while the context shuts down; the
    // batch stays replayable and counted.
  }
  {
    std::lock_guard lock(mutex_);
    ++stats_.batches;
    stats_.events += counts;
    stats_.bytes += size;
  }
  if (s.router) {
    s.kept_bytes += size;
    s.kept.emplace_back(seq, std::move(kept));
    while (s.kept.size() > 1 &&
           (s.kept.size() > config_.buffer_steps || s.kept_bytes > config_.buffer_bytes)) {
      s.kept_bytes -= s.kept.front().second.size();
      s.kept.pop_front();
    }
  }
}

void KvEventPublisher::serve_replay() {
  Sockets& s = *sockets_;
  if (!s.router) return;
  const bool with_topic = config_.replay_layout == KvReplayLayout::with_topic;
  const auto end_marker = seq_frame(kReplayEndSeq);
  for (int served = 0; served < kReplaysPerWake; ++served) {
    std::vector<zmq::message_t> request;
    try {
      const auto parts =
          zmq::recv_multipart(*s.router, std::back_inserter(request), zmq::recv_flags::dontwait);
      if (!parts) return;  // nothing waiting
    } catch (const zmq::error_t&) {
      return;
    }
    // [identity, "", start_seq (8 bytes)], as ROUTER hands a DEALER's ["", seq].
    if (request.size() != 3 || request[1].size() != 0 || request[2].size() != 8) {
      std::lock_guard lock(mutex_);
      ++stats_.replay_refused;
      continue;
    }
    {
      // Counted before the answer goes out, so a client that has read the
      // end marker sees it in stats().
      std::lock_guard lock(mutex_);
      ++stats_.replay_served;
    }
    const std::uint64_t start = seq_of_frame(request[2].data());
    const zmq::message_t& identity = request[0];
    auto head = [&] {
      s.router->send(zmq::buffer(identity.data(), identity.size()), zmq::send_flags::sndmore);
      s.router->send(zmq::const_buffer(), zmq::send_flags::sndmore);
    };
    try {
      for (auto& [seq, payload] : s.kept) {
        if (seq < start) continue;
        head();
        if (with_topic) s.router->send(zmq::buffer(config_.topic), zmq::send_flags::sndmore);
        s.router->send(zmq::buffer(seq_frame(seq)), zmq::send_flags::sndmore);
        zmq::message_t shared;
        shared.copy(payload);  // a reference to the kept bytes, not a copy
        s.router->send(shared, zmq::send_flags::none);
      }
      head();
      if (with_topic) s.router->send(zmq::const_buffer(), zmq::send_flags::sndmore);
      s.router->send(zmq::buffer(end_marker), zmq::send_flags::sndmore);
      s.router->send(zmq::const_buffer(), zmq::send_flags::none);
    } catch (const zmq::error_t&) {
      // The requester went away mid-answer: ROUTER drops what it cannot route.
    }
  }
}

}  // namespace kvscope
