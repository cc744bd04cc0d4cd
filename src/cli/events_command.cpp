// `kvscope events`: subscribes to a KV event stream (a kvscope engine's or
// a real vLLM's), fills gaps through replay, prints a live line and a final
// report (event_stream.hpp checks the stream).
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "event_stream.hpp"
#include "option_checks.hpp"

namespace kvscope::cli {

namespace {

using Clock = std::chrono::steady_clock;

/// Set by SIGINT / SIGTERM while `kvscope events` runs: stop and report.
volatile std::sig_atomic_t interrupted = 0;
extern "C" void on_interrupt(int) { interrupted = 1; }

/// Installs on_interrupt for SIGINT and SIGTERM for its lifetime.
class InterruptGuard {
 public:
  InterruptGuard() {
    interrupted = 0;
    previous_int_ = std::signal(SIGINT, on_interrupt);
    previous_term_ = std::signal(SIGTERM, on_interrupt);
  }
  ~InterruptGuard() {
    std::signal(SIGINT, previous_int_);
    std::signal(SIGTERM, previous_term_);
  }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  using Handler = void (*)(int);
  Handler previous_int_;
  Handler previous_term_;
};

std::span<const std::byte> bytes_of(const zmq::message_t& frame) {
  return {static_cast<const std::byte*>(frame.data()), frame.size()};
}

/// The replay side: a DEALER on the publisher's ROUTER. Reads either
/// layout (["", seq, payload] or ["", topic, seq, payload]).
class ReplayClient {
 public:
  ReplayClient(zmq::context_t& context, const std::string& endpoint)
      : socket_(context, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::rcvtimeo, 2000);
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }

  /// Asks for every kept batch from `start` on and feeds those below `stop`
  /// to the checker (as replayed); returns false when the answer never came.
  bool fetch(std::uint64_t start, std::uint64_t stop, EventStreamChecker& checker) {
    const auto seq = seq_frame(start);
    socket_.send(zmq::const_buffer(), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(seq), zmq::send_flags::none);
    for (;;) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(socket_, std::back_inserter(frames))) return false;
      // The seq frame is the 8-byte one before the last frame.
      if (frames.size() < 3 || frames[frames.size() - 2].size() != 8) {
        checker.bad_message();
        continue;
      }
      const std::uint64_t got = seq_of_frame(frames[frames.size() - 2].data());
      if (got == kReplayEndSeq) return true;  // the end marker
      if (got >= start && got < stop) checker.batch(got, bytes_of(frames.back()), true);
    }
  }

 private:
  zmq::socket_t socket_;
};

struct EventsOptions {
  std::string connect;
  std::string replay;
  std::string topic;
  double duration_seconds = 0;
  double idle_seconds = 0;
  std::string json_path;
  bool quiet = false;
};

std::string live_line(const EventStreamChecker& c, double seconds) {
  const EventStreamStats& s = c.stats();
  std::uint64_t cached = 0;
  for (const auto& [scope, n] : c.cached_blocks()) cached += n;
  return fmt::format("[{:6.1f} s] {} batches {:.0f}/s  stored {}  removed {}  cached {}  errors {}",
                     seconds, s.batches, seconds > 0 ? static_cast<double>(s.batches) / seconds : 0,
                     s.events.blocks_stored, s.blocks_removed, cached, s.consistency_errors());
}

int run_events(const EventsOptions& o, const CliStreams& streams) {
  zmq::context_t context(1);
  zmq::socket_t sub(context, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, o.topic);
  sub.set(zmq::sockopt::rcvtimeo, 100);
  sub.set(zmq::sockopt::linger, 0);
  // No receive limit: ZeroMQ's I/O thread takes every message off the wire
  // as it comes, so a burst the checker is slow to decode is queued here,
  // not lost when the publisher exits.
  sub.set(zmq::sockopt::rcvhwm, 0);
  try {
    sub.connect(o.connect);
  } catch (const zmq::error_t& e) {
    throw std::invalid_argument(fmt::format("--connect {}: {}", o.connect, e.what()));
  }
  std::optional<ReplayClient> replay;
  if (!o.replay.empty()) {
    try {
      replay.emplace(context, o.replay);
    } catch (const zmq::error_t& e) {
      throw std::invalid_argument(fmt::format("--replay {}: {}", o.replay, e.what()));
    }
  }
  EventStreamChecker checker;
  const auto start = Clock::now();
  auto last_batch = start;
  auto last_line = start;
  auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  const InterruptGuard interrupt_guard;  // Ctrl-C ends the watch with the report
  for (;;) {
    if (interrupted != 0) break;
    if (o.duration_seconds > 0 && seconds_since(start) >= o.duration_seconds) break;
    if (o.idle_seconds > 0 && checker.stats().batches > 0 &&
        seconds_since(last_batch) >= o.idle_seconds)
      break;
    if (!o.quiet && seconds_since(last_line) >= 1) {
      last_line = Clock::now();
      streams.out << (streams.interactive ? "\r\x1b[K" : "")
                  << live_line(checker, seconds_since(start)) << (streams.interactive ? "" : "\n")
                  << std::flush;
    }
    std::vector<zmq::message_t> frames;
    try {
      if (!zmq::recv_multipart(sub, std::back_inserter(frames))) continue;  // timed out
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;  // a signal: the loop's top decides
      throw;
    }
    if (frames.size() != 3 || frames[1].size() != 8) {
      checker.bad_message();
      continue;
    }
    last_batch = Clock::now();
    const std::uint64_t seq = seq_of_frame(frames[1].data());
    // Catch up: from 0 on the first batch (what the publisher still keeps),
    // from the expected seq after a gap.
    const std::uint64_t from = checker.expected_seq().value_or(0);
    if (seq > from && replay) {
      if (checker.expected_seq()) checker.saw_gap();
      replay->fetch(from, seq, checker);
    } else if (seq > from && checker.expected_seq()) {
      checker.saw_gap();
    }
    checker.batch(seq, bytes_of(frames[2]));
  }
  if (streams.interactive && !o.quiet) streams.out << "\r\x1b[K";
  const double seconds = seconds_since(start);
  streams.out << checker.report_text(seconds);
  if (!o.json_path.empty()) write_file(o.json_path, checker.report_json(seconds).dump(2) + "\n");
  return kExitOk;
}

}  // namespace

CLI::App* add_events_command(CLI::App& app, std::function<int(const CliStreams&)>& run) {
  auto options = std::make_shared<EventsOptions>();
  CLI::App* cmd = app.add_subcommand(
      "events", "Watch a KV cache event stream (kvscope or vLLM) and check its consistency");
  cmd->add_option("--connect", options->connect,
                  "The publisher's PUB endpoint, e.g. tcp://127.0.0.1:5557")
      ->required();
  cmd->add_option("--replay", options->replay,
                  "The publisher's replay (ROUTER) endpoint: fills gaps and the start");
  cmd->add_option("--topic", options->topic, "Subscribe to this topic prefix (default: all)");
  cmd->add_option("--duration", options->duration_seconds,
                  "Stop after this many seconds (0: no limit; Ctrl-C or SIGTERM stops and reports)")
      ->check(between(0.0, 1e7));
  cmd->add_option("--idle", options->idle_seconds,
                  "Stop once no batch came for this many seconds after the first (0: never)")
      ->check(between(0.0, 1e7));
  cmd->add_option("--json", options->json_path, "Write the final report as JSON to this file");
  cmd->add_flag("--quiet", options->quiet, "No live line");
  run = [options](const CliStreams& streams) { return run_events(*options, streams); };
  return cmd;
}

}  // namespace kvscope::cli
