// The shared fixture of the integration tests: the serving_stack example as a
// real process and a real Prometheus server (Debian's prometheus package)
// scraping it every second on loopback, each in a fresh temporary directory.
//
// Contract:
//  - SetUp skips the test when /usr/bin/prometheus or /usr/bin/promtool is
//    missing, unless KVSCOPE_REQUIRE_INTEGRATION=1 (.ci/run sets it), which
//    turns that into a failure;
//  - start_serving_stack() (also usable without the fixture) and
//    start_example() start the example on a free port with the flags every
//    test shares (2 shards, 100 ms snapshots, no simulated model time) plus
//    the caller's; start_prometheus() points Prometheus (job "kvscope") at it;
//  - both children are killed and reaped when the test ends; the temporary
//    directory (Prometheus' config, data and log) is kept when the test
//    failed, for the post-mortem.
// Needs KVSCOPE_SERVING_STACK (the example's path) from the build.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "child_process.hpp"
#include "http_client.hpp"

namespace kvscope::testing_util {

inline constexpr const char* kPrometheus = "/usr/bin/prometheus";
inline constexpr const char* kPromtool = "/usr/bin/promtool";

inline bool tools_present() {
  return std::filesystem::exists(kPrometheus) && std::filesystem::exists(kPromtool);
}

/// KVSCOPE_REQUIRE_INTEGRATION=1: a missing Prometheus fails instead of skipping.
inline bool required() {
  const char* value = std::getenv("KVSCOPE_REQUIRE_INTEGRATION");
  return value != nullptr && std::string(value) == "1";
}

/// A loopback port nobody listens on right now.
inline std::uint16_t free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

/// Percent-encodes a PromQL expression for a query string.
inline std::string url_encode(std::string_view text) {
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", c);
      out += escaped;
    }
  }
  return out;
}

inline std::filesystem::path make_temp_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "kvscope-prom-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct ServingStackProcess {
  std::unique_ptr<ChildProcess> process;
  std::uint16_t port = 0;
};

/// Starts serving_stack on a free port with the shared flags and then
/// `extra_flags` (e.g. {"--blocks", "256"}: the shared ones leave the pool at
/// the example's default, and a flag given twice is refused), and waits for
/// the line that names its port.
inline ServingStackProcess start_serving_stack(const std::vector<std::string>& extra_flags = {}) {
  std::vector<std::string> argv{KVSCOPE_SERVING_STACK};
  for (const char* shared : {"--port", "0", "--shards", "2", "--snapshot-ms", "100",
                             "--prefill-us-per-token", "0", "--decode-us-per-token", "0"})
    argv.emplace_back(shared);
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  auto process = std::make_unique<ChildProcess>(argv);
  const auto line = process->read_line(std::chrono::seconds(30));
  if (!line) throw std::runtime_error("serving_stack printed nothing");
  std::smatch match;
  if (!std::regex_search(*line, match, std::regex(R"(listening on http://127\.0\.0\.1:(\d+))")))
    throw std::runtime_error("unexpected first line: " + *line);
  return {std::move(process), static_cast<std::uint16_t>(std::stoi(match[1]))};
}

class PrometheusFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!tools_present()) {
      if (required()) FAIL() << "prometheus/promtool missing: apt-get install prometheus";
      GTEST_SKIP() << "prometheus not installed (apt-get install prometheus)";
    }
    dir_ = make_temp_dir();
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty() && !HasFailure()) std::filesystem::remove_all(dir_, ignored);
  }

  /// start_serving_stack() kept in example_; returns the port.
  std::uint16_t start_example(const std::vector<std::string>& extra_flags = {}) {
    ServingStackProcess started = start_serving_stack(extra_flags);
    example_ = std::move(started.process);
    return started.port;
  }

  /// Starts Prometheus scraping 127.0.0.1:target every second (job
  /// "kvscope"); returns its port. Its log is dir_/prometheus.log.
  std::uint16_t start_prometheus(std::uint16_t target) {
    const std::filesystem::path config = dir_ / "prometheus.yml";
    std::ofstream(config) << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                          << "scrape_configs:\n  - job_name: kvscope\n    static_configs:\n"
                          << "      - targets: ['127.0.0.1:" << target << "']\n";
    const std::uint16_t port = free_port();
    prometheus_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{kPrometheus, "--config.file=" + config.string(),
                                 "--storage.tsdb.path=" + (dir_ / "data").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port),
                                 "--log.level=warn"},
        (dir_ / "prometheus.log").string());
    return port;
  }

  std::filesystem::path dir_;
  std::unique_ptr<ChildProcess> example_;
  std::unique_ptr<ChildProcess> prometheus_;
};

}  // namespace kvscope::testing_util
