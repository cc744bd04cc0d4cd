#include "kv_event_options.hpp"

namespace kvscope::cli {

KvEventsConfig kv_events_config(const std::string& endpoint, const std::string& replay,
                                const std::string& topic, const std::string& format) {
  KvEventsConfig config;
  config.enabled = !endpoint.empty();
  if (!config.enabled) return config;
  config.endpoint = endpoint;
  config.replay_endpoint = replay;
  config.topic = topic;
  config.format = *parse_kv_event_format(format);  // checked by the option
  return config;
}

void add_kv_event_options(CLI::App& cmd, std::string& endpoint, std::string& replay,
                          std::string& topic, std::string& format) {
  cmd.add_option("--kv-events", endpoint,
                 "Publish KV cache events for routers (vLLM's format, ZeroMQ PUB) on this "
                 "endpoint, e.g. 'tcp://*:5557' (binds: '*', '::', ipc://, inproc://; else "
                 "connects)");
  cmd.add_option("--kv-events-replay", replay,
                 "Answer replay requests (ZeroMQ ROUTER, bound) on this endpoint")
      ->needs("--kv-events");
  cmd.add_option("--kv-events-topic", topic,
                 "Topic frame of every message (llm-d: kv@<host:port>@<model>)")
      ->needs("--kv-events");
  cmd.add_option("--kv-events-format", format, "Event layout: map (vLLM today) or array (older)")
      ->check(CLI::IsMember({"map", "array"}))
      ->needs("--kv-events");
}

}  // namespace kvscope::cli
