// kvscope/events/kv_event_publisher.hpp - publishes KV cache event batches
// over ZeroMQ exactly as a vLLM engine does, so KV-aware routers (llm-d's
// precise prefix-cache scorer, NVIDIA Dynamo's KV router) can route to a
// kvscope-based engine. docs/kv-events.md has the wire format.
//
// Shards hand whole batches (a CacheEventLog each) to submit(); a thread of
// the publisher's own numbers them (seq 0, 1, ... with no gaps), encodes
// them (kv_event_codec.hpp) and sends [topic, seq (8 bytes big-endian),
// payload] on the PUB socket, keeping the last buffer_steps payloads (at
// most buffer_bytes of them) for replay, and hands the emptied logs back
// to later submit() calls. The ROUTER socket, when configured, answers [identity, "",
// start_seq] with every kept batch from start_seq on, then an end marker.
// Batches from one submitting thread are sent in submission order, so a
// shard's BlockStored always precedes the events naming its blocks.
//
// Thread rules: submit() and stats() from any thread; submit() never blocks
// on the network (a full queue drops the batch and counts it; PUB itself
// drops at its high-water mark, as ZeroMQ does). Construction binds or
// connects the sockets: a bad endpoint or a port in use throws
// std::invalid_argument naming the option. Destruction sends what was
// submitted, then closes the sockets, waiting up to KvEventsConfig::linger
// for subscribers that have not taken everything yet.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "kvscope/cache_events.hpp"
#include "kvscope/events/kv_event_codec.hpp"
#include "kvscope/events/kv_events_config.hpp"

namespace kvscope {

/// What the publisher did, cumulative since it started.
struct KvEventStats {
  std::uint64_t batches = 0;          ///< batches sent on the PUB socket
  KvEventCounts events;               ///< events in them, by type
  std::uint64_t bytes = 0;            ///< payload bytes sent (frames 3)
  std::uint64_t batches_dropped = 0;  ///< batches refused because the queue was full
  std::uint64_t replay_served = 0;    ///< replay requests answered
  std::uint64_t replay_refused = 0;   ///< malformed replay requests ignored
};

class KvEventPublisher {
 public:
  /// Validates `config` and opens the sockets. Throws std::invalid_argument
  /// (bad option, endpoint that cannot be bound or connected, port in use).
  explicit KvEventPublisher(KvEventsConfig config);
  /// Sends everything submitted before, then closes.
  ~KvEventPublisher();
  KvEventPublisher(const KvEventPublisher&) = delete;
  KvEventPublisher& operator=(const KvEventPublisher&) = delete;

  /// Queues one batch (the events of `log`, moved out; `log` is left empty,
  /// often with the capacity of a batch sent before)
  /// stamped with wall-clock `ts` seconds. An empty log is not a batch:
  /// nothing happens and true is returned. False when the queue is full
  /// (the batch is dropped and counted). Any thread; never blocks on I/O.
  bool submit(CacheEventLog& log, double ts);
  /// Blocks until every batch submitted before the call has been sent.
  void flush();
  KvEventStats stats() const;
  const KvEventsConfig& config() const noexcept { return config_; }
  /// The PUB socket's endpoint as ZeroMQ resolved it (a wildcard port such
  /// as tcp://127.0.0.1:* shows the port it got). Any thread.
  const std::string& endpoint() const noexcept { return endpoint_; }
  /// The ROUTER socket's, or empty without replay. Any thread.
  const std::string& replay_endpoint() const noexcept { return replay_endpoint_; }

 private:
  struct Sockets;
  struct Pending {
    CacheEventLog log;
    double ts = 0;
  };
  void run();
  void send(Pending& batch);
  void serve_replay();

  KvEventsConfig config_;
  std::unique_ptr<Sockets> sockets_;
  std::string endpoint_;         // set by the constructor, then read-only
  std::string replay_endpoint_;  // set by the constructor, then read-only  // the publisher
                                 // thread's only, after construction

  mutable std::mutex mutex_;
  std::condition_variable wake_;     // work for the thread
  std::condition_variable drained_;  // the queue ran dry (flush)
  std::deque<Pending> queue_;        // guarded by mutex_
  // Sent batches' logs, emptied with their capacity kept, handed back to
  // submitters so a shard's log does not grow from nothing every batch.
  std::vector<CacheEventLog> spare_logs_;  // guarded by mutex_
  std::uint64_t submitted_ = 0;            // guarded by mutex_
  std::uint64_t handled_ = 0;              // guarded by mutex_: sent or failed to send
  bool stopping_ = false;                  // guarded by mutex_
  KvEventStats stats_;                     // guarded by mutex_

  std::thread thread_;  // last: starts once everything else exists
};

}  // namespace kvscope
