// kvscope/metrics/merged_snapshot.hpp - every shard's metrics merged at one
// instant: what the runtime's aggregator builds each round and what the
// analytics (one floor up) read.
//
// A plain value: global figures are exact sums of the per-shard ones
// (ShardSnapshot::operator+=, MultiLevelSnapshot::operator+=). The runtime
// extends it into RuntimeSnapshot (alerts, analytics, its own counters);
// tests and offline tools may fill one by hand.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include "kvscope/clock.hpp"
#include "kvscope/metrics/multi_level_metrics.hpp"
#include "kvscope/metrics/shard_metrics.hpp"

namespace kvscope {

/// The kinds of operation a runtime runs on a shard.
enum class ShardOperation : std::uint8_t { lookup, allocate, append, free, other };
inline constexpr std::size_t kShardOperationCount = 5;
/// "lookup", "allocate", "append", "free", "other".
std::string_view to_string(ShardOperation kind) noexcept;

/// Time operations spent on their shard's thread: the service time, from the
/// start of an operation's work to its end, without the queueing and the
/// hops that await-to-resume latency adds. Every `sampling`-th operation of
/// each kind is timed (two clock reads) and recorded with weight `sampling`, so a
/// histogram's count estimates all operations of its kind; `operations`
/// counts them exactly. Merge with +=.
struct ServiceTimes {
  std::uint32_t sampling = 0;  ///< 1 in `sampling` operations timed (0: none yet)
  std::array<std::uint64_t, kShardOperationCount> operations{};  ///< exact, by kind
  std::array<Histogram, kShardOperationCount> service_ns;        ///< weighted samples, by kind

  ServiceTimes() = default;
  explicit ServiceTimes(const HistogramLayout& layout, std::uint32_t sampling);
  /// Mean service time of one kind, ns (0 without samples).
  double mean_ns(ShardOperation kind) const noexcept;
  /// Estimated shard time of all operations, ns: the sum over kinds of
  /// mean service time x operations.
  double total_ns() const noexcept;
  /// Throws std::invalid_argument on another histogram layout (nothing changes then).
  ServiceTimes& operator+=(const ServiceTimes& other);
};

/// How busy one shard was: the routing's skew shows here.
struct ShardLoad {
  std::uint64_t operations = 0;      ///< operations run on the shard since start
  double operations_per_second = 0;  ///< over the last snapshot interval
  /// Share of all shards' operations in the last interval (1/S when even).
  double share = 0;
  std::uint64_t observations_dropped = 0;  ///< fire-and-forget records its queue dropped
  ServiceTimes service;                    ///< time operations spent on the shard
};

struct MergedSnapshot {
  std::uint64_t sequence = 0;  ///< 1, 2, ... in publication order
  Timestamp at{0};             ///< the metrics clock when taken
  std::chrono::system_clock::time_point wall_time{};
  std::chrono::nanoseconds interval{0};  ///< since the previous snapshot (0 for the first)
  bool final = false;                    ///< the last one: no more will follow

  ShardSnapshot global;                          ///< sum of `shards`
  std::vector<ShardSnapshot> shards;             ///< index = shard id
  MultiLevelSnapshot levels;                     ///< observed cache levels, sum of `shard_levels`
  std::vector<MultiLevelSnapshot> shard_levels;  ///< index = shard id
  std::vector<ShardLoad> load;                   ///< index = shard id

  /// Largest shard share times the shard count: 1 = perfectly even, S = one
  /// shard did everything. 0 when nothing ran in the interval.
  double load_imbalance() const noexcept;
  /// Fire-and-forget observations dropped by full queues, all shards, since start.
  std::uint64_t observations_dropped() const noexcept;
  /// Every shard's service times merged (empty without load figures).
  ServiceTimes service() const;
};

}  // namespace kvscope
