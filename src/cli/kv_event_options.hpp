// The --kv-events* options, shared by `kvscope bench` and the serving-stack
// example: where and how a Runtime publishes its KV cache events
// (docs/kv-events.md).
#pragma once

#include <string>

#include <CLI/App.hpp>

#include "kvscope/events/kv_events_config.hpp"

namespace kvscope::cli {

/// RuntimeConfig::kv_events from the options (off when the endpoint is empty).
KvEventsConfig kv_events_config(const std::string& endpoint, const std::string& replay,
                                const std::string& topic, const std::string& format);
/// Registers --kv-events, --kv-events-replay, --kv-events-topic and
/// --kv-events-format on `cmd`, filling the strings as CLI11 parses.
void add_kv_event_options(CLI::App& cmd, std::string& endpoint, std::string& replay,
                          std::string& topic, std::string& format);

}  // namespace kvscope::cli
