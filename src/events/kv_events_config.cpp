#include "kvscope/events/kv_events_config.hpp"

#include <charconv>
#include <stdexcept>

namespace kvscope {

namespace {

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument("kvscope: KvEventsConfig." + what);
}

bool known_transport(std::string_view endpoint) {
  for (std::string_view scheme : {"tcp://", "ipc://", "inproc://"})
    if (endpoint.substr(0, scheme.size()) == scheme && endpoint.size() > scheme.size()) return true;
  return false;
}

}  // namespace

std::string_view to_string(KvEventFormat format) noexcept {
  return format == KvEventFormat::map ? "map" : "array";
}
std::string_view to_string(KvReplayLayout layout) noexcept {
  return layout == KvReplayLayout::plain ? "plain" : "with_topic";
}
std::string_view to_string(KvHashEncoding encoding) noexcept {
  return encoding == KvHashEncoding::uint64 ? "uint64" : "bytes";
}
std::optional<KvEventFormat> parse_kv_event_format(std::string_view name) noexcept {
  if (name == "map") return KvEventFormat::map;
  if (name == "array") return KvEventFormat::array;
  return std::nullopt;
}

bool binds(std::string_view endpoint) noexcept {
  return endpoint.find('*') != std::string_view::npos ||
         endpoint.find("::") != std::string_view::npos || endpoint.starts_with("ipc://") ||
         endpoint.starts_with("inproc://");
}

std::string offset_endpoint(std::string_view endpoint, std::uint32_t rank) {
  if (rank == 0) return std::string(endpoint);
  if (endpoint.starts_with("inproc://"))
    return std::string(endpoint) + "_dp" + std::to_string(rank);
  if (!endpoint.starts_with("tcp://"))
    throw std::invalid_argument(
        "kvscope: a data-parallel rank needs a tcp:// or inproc:// endpoint, got " +
        std::string(endpoint));
  const std::size_t colon = endpoint.rfind(':');
  unsigned port = 0;
  const char* first = endpoint.data() + colon + 1;
  const char* last = endpoint.data() + endpoint.size();
  const auto [end, error] = std::from_chars(first, last, port);
  if (colon < 6 || error != std::errc{} || end != last || port + rank > 65535)
    throw std::invalid_argument("kvscope: cannot offset the port of " + std::string(endpoint) +
                                " by rank " + std::to_string(rank));
  return std::string(endpoint.substr(0, colon + 1)) + std::to_string(port + rank);
}

void KvEventsConfig::validate() const {
  if (!known_transport(endpoint))
    bad("endpoint must be tcp://, ipc:// or inproc:// with an address, got '" + endpoint + "'");
  if (!replay_endpoint.empty()) {
    if (!known_transport(replay_endpoint))
      bad("replay_endpoint must be tcp://, ipc:// or inproc:// with an address, got '" +
          replay_endpoint + "'");
    // Equal endpoints collide, unless the port is a wildcard (each bind then
    // gets a port of its own).
    if (replay_endpoint == endpoint && !endpoint.ends_with(":*"))
      bad("replay_endpoint must differ from endpoint (both '" + endpoint + "')");
  }
  if (buffer_steps < 1 || buffer_steps > 1'000'000) bad("buffer_steps must be 1 .. 1,000,000");
  if (buffer_bytes < (std::uint64_t{1} << 20) || buffer_bytes > (std::uint64_t{64} << 30))
    bad("buffer_bytes must be 1 MiB .. 64 GiB");
  if (hwm < 1 || hwm > 10'000'000) bad("hwm must be 1 .. 10,000,000");
  if (queue_batches < 1 || queue_batches > 1'000'000) bad("queue_batches must be 1 .. 1,000,000");
  if (publish_interval < std::chrono::milliseconds(1) ||
      publish_interval > std::chrono::seconds(10))
    bad("publish_interval must be 1 ms .. 10 s");
  if (batch_bytes < 4 * 1024 || batch_bytes > (1u << 30)) bad("batch_bytes must be 4 KiB .. 1 GiB");
  if (dp_rank > 65'535) bad("dp_rank must be 0 .. 65,535");
  if (linger < std::chrono::milliseconds(0) || linger > std::chrono::seconds(60))
    bad("linger must be 0 .. 60 s");
  try {
    (void)pub_endpoint();
    (void)router_endpoint();
  } catch (const std::invalid_argument& e) {
    bad(std::string("dp_rank: ") + e.what());
  }
}

std::string KvEventsConfig::pub_endpoint() const { return offset_endpoint(endpoint, dp_rank); }

std::string KvEventsConfig::router_endpoint() const {
  return replay_endpoint.empty() ? std::string() : offset_endpoint(replay_endpoint, dp_rank);
}

}  // namespace kvscope
