#include "event_stream.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>

namespace kvscope::cli {

namespace {

std::uint64_t to_ns(double seconds) {
  return seconds <= 0 ? 0 : static_cast<std::uint64_t>(std::llround(seconds * 1e9));
}

}  // namespace

EventStreamChecker::EventStreamChecker() : lifetimes_ns_(HistogramLayout{}) {}

std::optional<std::uint64_t> EventStreamChecker::expected_seq() const noexcept {
  if (!stats_.last_seq) return std::nullopt;
  return *stats_.last_seq + 1;
}

void EventStreamChecker::batch(std::uint64_t seq, std::span<const std::byte> payload,
                               bool replayed) {
  if (const auto expected = expected_seq(); expected && seq < *expected) {
    ++stats_.duplicates;
    return;
  } else if (expected && seq > *expected) {
    stats_.batches_lost += seq - *expected;
  }
  if (replayed) ++stats_.batches_recovered;
  if (!stats_.first_seq) stats_.first_seq = seq;
  stats_.last_seq = seq;
  ++stats_.batches;
  stats_.bytes += payload.size();
  DecodedBatch decoded;
  try {
    decoded = decode_kv_event_batch(payload, KvDecodeOptions{.token_ids = false});
  } catch (const KvDecodeError&) {
    ++stats_.bad_payloads;
    return;
  }
  for (const DecodedEvent& e : decoded.events) apply(e, decoded.ts);
}

// Events nearly always name the scope of the one before: compare, do not
// look up.
EventStreamChecker::Blocks& EventStreamChecker::blocks_of(const DecodedEvent& e) {
  const std::string_view medium = e.medium ? std::string_view(*e.medium) : std::string_view();
  const std::int64_t group = e.group_idx.value_or(0);
  if (last_blocks_ == nullptr || last_scope_.first != medium || last_scope_.second != group) {
    last_scope_ = Scope(std::string(medium), group);
    last_blocks_ = &cached_.try_emplace(last_scope_, &pool_).first->second;
  }
  return *last_blocks_;
}

void EventStreamChecker::apply(const DecodedEvent& e, double ts) {
  switch (e.kind) {
    case DecodedEvent::Kind::stored: {
      ++stats_.events.stored;
      stats_.events.blocks_stored += e.block_hashes.size();
      Blocks& blocks = blocks_of(e);
      // A sliding-window group caches only the blocks a hit can use: its
      // runs may name a parent that was never stored (vLLM does the same).
      const bool sliding = e.kv_cache_spec_kind && *e.kv_cache_spec_kind == "sliding_window";
      if (e.parent_block_hash && !sliding && !blocks.contains(*e.parent_block_hash))
        ++stats_.parent_not_seen;
      for (const WireHash& h : e.block_hashes)
        if (!blocks.emplace(h, ts).second) ++stats_.duplicate_stores;
      break;
    }
    case DecodedEvent::Kind::removed: {
      ++stats_.events.removed;
      Blocks& blocks = blocks_of(e);
      for (const WireHash& h : e.block_hashes) {
        ++stats_.blocks_removed;
        const auto it = blocks.find(h);
        if (it == blocks.end()) {
          ++stats_.remove_unknown;
          continue;
        }
        lifetimes_ns_.record(to_ns(ts - it->second));
        blocks.erase(it);
      }
      break;
    }
    case DecodedEvent::Kind::cleared:
      ++stats_.events.cleared;
      cached_.clear();
      last_blocks_ = nullptr;
      break;
    case DecodedEvent::Kind::unknown: ++stats_.unknown_events; break;
  }
}

std::map<std::pair<std::string, std::int64_t>, std::uint64_t> EventStreamChecker::cached_blocks()
    const {
  std::map<Scope, std::uint64_t> out;
  for (const auto& [scope, blocks] : cached_)
    if (!blocks.empty()) out[scope] = blocks.size();
  return out;
}

std::string EventStreamChecker::report_text(double seconds) const {
  const EventStreamStats& s = stats_;
  fmt::memory_buffer out;
  auto it = std::back_inserter(out);
  fmt::format_to(it, "kvscope events: {} batches in {:.1f} s ({:.0f}/s), {:.1f} MiB\n", s.batches,
                 seconds, seconds > 0 ? static_cast<double>(s.batches) / seconds : 0.0,
                 static_cast<double>(s.bytes) / (1 << 20));
  fmt::format_to(
      it,
      "events: {} BlockStored ({} blocks), {} BlockRemoved ({} blocks), {} AllBlocksCleared, {} "
      "of unknown types\n",
      s.events.stored, s.events.blocks_stored, s.events.removed, s.blocks_removed, s.events.cleared,
      s.unknown_events);
  fmt::format_to(it, "cached now:");
  const auto cached = cached_blocks();
  if (cached.empty()) fmt::format_to(it, " none");
  for (const auto& [scope, n] : cached)
    fmt::format_to(it, " {} group {}: {} blocks;", scope.first, scope.second, n);
  fmt::format_to(it, "\n");
  const Histogram& l = lifetimes_ns_;
  if (l.count() > 0) {
    fmt::format_to(
        it,
        "block lifetime, stored to removed ({} blocks): p50 {:.3f} s, p90 {:.3f} s, p99 {:.3f} "
        "s, max {:.3f} s\n",
        l.count(), static_cast<double>(l.quantile(0.5)) / 1e9,
        static_cast<double>(l.quantile(0.9)) / 1e9, static_cast<double>(l.quantile(0.99)) / 1e9,
        static_cast<double>(l.max()) / 1e9);
  }
  fmt::format_to(
      it,
      "stream: seq {}..{}, {} gaps ({} batches replayed, {} lost), {} duplicates, {} bad "
      "messages, {} bad payloads\n",
      s.first_seq.value_or(0), s.last_seq.value_or(0), s.gaps, s.batches_recovered, s.batches_lost,
      s.duplicates, s.bad_messages, s.bad_payloads);
  fmt::format_to(
      it,
      "consistency: {} parents not seen, {} removals of unknown hashes, {} repeated stores: {}\n",
      s.parent_not_seen, s.remove_unknown, s.duplicate_stores,
      s.consistency_errors() == 0 ? "OK" : "ERRORS");
  return fmt::to_string(out);
}

nlohmann::json EventStreamChecker::report_json(double seconds) const {
  const EventStreamStats& s = stats_;
  nlohmann::json cached = nlohmann::json::array();
  for (const auto& [scope, n] : cached_blocks())
    cached.push_back({{"medium", scope.first}, {"group_idx", scope.second}, {"blocks", n}});
  const Histogram& l = lifetimes_ns_;
  auto seconds_at = [&](double q) { return static_cast<double>(l.quantile(q)) / 1e9; };
  return {{"seconds", seconds},
          {"batches", s.batches},
          {"batches_per_second", seconds > 0 ? static_cast<double>(s.batches) / seconds : 0.0},
          {"bytes", s.bytes},
          {"events",
           {{"BlockStored", s.events.stored},
            {"BlockRemoved", s.events.removed},
            {"AllBlocksCleared", s.events.cleared},
            {"unknown", s.unknown_events}}},
          {"blocks_stored", s.events.blocks_stored},
          {"blocks_removed", s.blocks_removed},
          {"cached", std::move(cached)},
          {"lifetime_s",
           {{"count", l.count()},
            {"p50", seconds_at(0.5)},
            {"p90", seconds_at(0.9)},
            {"p99", seconds_at(0.99)},
            {"max", static_cast<double>(l.count() > 0 ? l.max() : 0) / 1e9}}},
          {"first_seq", s.first_seq ? nlohmann::json(*s.first_seq) : nlohmann::json(nullptr)},
          {"last_seq", s.last_seq ? nlohmann::json(*s.last_seq) : nlohmann::json(nullptr)},
          {"gaps", s.gaps},
          {"batches_recovered", s.batches_recovered},
          {"batches_lost", s.batches_lost},
          {"duplicates", s.duplicates},
          {"bad_messages", s.bad_messages},
          {"bad_payloads", s.bad_payloads},
          {"parent_not_seen", s.parent_not_seen},
          {"remove_unknown", s.remove_unknown},
          {"duplicate_stores", s.duplicate_stores},
          {"consistency_errors", s.consistency_errors()}};
}

}  // namespace kvscope::cli
