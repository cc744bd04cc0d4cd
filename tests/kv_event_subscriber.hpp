// A test subscriber of KV event streams: a ZeroMQ SUB socket on the
// publisher's endpoint and, when given, a DEALER on its replay endpoint.
// receive_until() collects batches in seq order, filling any gap (the PUB
// socket drops what it sends before a subscription is in place) through
// replay, and returns them decoded.
#pragma once

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "kvscope/events/kv_event_codec.hpp"

namespace kvscope::testing_util {

struct ReceivedBatch {
  std::string topic;
  std::uint64_t seq = 0;
  std::string payload;
  DecodedBatch batch;
};

class KvEventSubscriber {
 public:
  /// `with_topic`: the publisher's replay layout is KvReplayLayout::with_topic.
  KvEventSubscriber(const std::string& endpoint, const std::string& replay_endpoint,
                    const std::string& topic = "", bool with_topic = false)
      : with_topic_(with_topic), sub_(context_, zmq::socket_type::sub) {
    sub_.set(zmq::sockopt::subscribe, topic);
    sub_.set(zmq::sockopt::rcvtimeo, 50);
    sub_.connect(endpoint);
    if (!replay_endpoint.empty()) {
      dealer_.emplace(context_, zmq::socket_type::dealer);
      dealer_->set(zmq::sockopt::rcvtimeo, 2000);
      dealer_->connect(replay_endpoint);
    }
  }

  /// Sends a replay request for batches from `start` on and reads the
  /// answer up to the end marker.
  std::vector<ReceivedBatch> replay(std::uint64_t start) {
    const bool with_topic = with_topic_;
    std::vector<ReceivedBatch> out;
    const auto seq = seq_frame(start);
    dealer_->send(zmq::const_buffer(), zmq::send_flags::sndmore);
    dealer_->send(zmq::buffer(seq), zmq::send_flags::none);
    for (;;) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(*dealer_, std::back_inserter(frames))) break;  // timed out
      // DEALER sees ["", (topic,) seq, payload].
      const std::size_t seq_at = with_topic ? 2 : 1;
      if (frames.size() != seq_at + 2 || frames[seq_at].size() != 8) {
        malformed_replies++;
        break;
      }
      const std::uint64_t got = seq_of_frame(frames[seq_at].data());
      if (got == kReplayEndSeq) {
        end_markers++;
        break;
      }
      ReceivedBatch r;
      r.seq = got;
      if (with_topic) r.topic = frames[1].to_string();
      r.payload = frames[seq_at + 1].to_string();
      r.batch = decode_kv_event_batch(std::as_bytes(std::span(r.payload)));
      out.push_back(std::move(r));
    }
    return out;
  }

  /// Receives live batches from seq `first` on until `done(batches)` holds
  /// or `timeout` passes; a gap in seq is filled from the replay socket
  /// (when there is one). Earlier batches are skipped.
  template <class Done>
  std::vector<ReceivedBatch> receive_until(Done done, std::chrono::milliseconds timeout,
                                           std::uint64_t first = 0) {
    std::vector<ReceivedBatch> got;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done(got) && std::chrono::steady_clock::now() < deadline) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(sub_, std::back_inserter(frames))) continue;
      if (frames.size() != 3 || frames[1].size() != 8) {
        malformed_messages++;
        continue;
      }
      ReceivedBatch r;
      r.topic = frames[0].to_string();
      r.seq = seq_of_frame(frames[1].data());
      r.payload = frames[2].to_string();
      const std::uint64_t expected = got.empty() ? first : got.back().seq + 1;
      if (r.seq < expected) continue;  // already replayed
      if (r.seq > expected && dealer_) {
        ++gaps;
        for (ReceivedBatch& missed : replay(expected))
          if (missed.seq >= expected && missed.seq < r.seq) got.push_back(std::move(missed));
      }
      r.batch = decode_kv_event_batch(std::as_bytes(std::span(r.payload)));
      got.push_back(std::move(r));
    }
    return got;
  }

  zmq::socket_t& dealer() { return *dealer_; }

  int malformed_messages = 0;
  int malformed_replies = 0;
  int end_markers = 0;
  int gaps = 0;

 private:
  bool with_topic_;
  zmq::context_t context_{1};
  zmq::socket_t sub_;
  std::optional<zmq::socket_t> dealer_;
};

}  // namespace kvscope::testing_util
