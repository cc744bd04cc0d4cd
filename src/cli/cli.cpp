#include "cli.hpp"

#include <CLI/CLI.hpp>

#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

#include "commands.hpp"

namespace kvscope::cli {

namespace {

// The library's messages start with "kvscope: " too: print it once.
std::string_view without_prefix(std::string_view message) {
  constexpr std::string_view kPrefix = "kvscope: ";
  if (message.substr(0, kPrefix.size()) == kPrefix) message.remove_prefix(kPrefix.size());
  return message;
}

// "--requests: must be >= 1" -> "--requests must be >= 1".
std::string flag_sentence(std::string_view message) {
  const std::size_t colon = message.find(": ");
  if (message.substr(0, 2) != "--" || colon == std::string_view::npos) return std::string(message);
  return std::string(message.substr(0, colon)) + " " + std::string(message.substr(colon + 2));
}

}  // namespace

int run_cli(int argc, const char* const* argv, const CliStreams& streams) {
  CLI::App app{"kvscope: a prefix-cache runtime for C++ LLM serving stacks", "kvscope"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kvscope 0.1.0");
  // Every option's --help line shows its default (subcommands inherit this).
  app.option_defaults()->always_capture_default();
  BenchOptions bench;
  ReplayOptions replay;
  CLI::App* bench_command = add_bench_command(app, bench);
  CLI::App* replay_command = add_replay_command(app, replay);
  std::function<int(const CliStreams&)> run_events;
  CLI::App* events_command = add_events_command(app, run_events);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ValidationError& e) {
    // CLI11 writes "--flag: must be >= 1"; users read "--flag must be >= 1".
    streams.err << "kvscope: " << flag_sentence(e.what())
                << "\nRun with --help for more information.\n";
    return kExitUsage;
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e, streams.out, streams.err);
    return code == 0 ? kExitOk : kExitUsage;
  }
  try {
    if (bench_command->parsed()) return run_bench(bench, streams);
    if (replay_command->parsed()) return run_replay(replay, streams);
    if (events_command->parsed()) return run_events(streams);
  } catch (const std::invalid_argument& e) {  // options valid alone, not together
    streams.err << "kvscope: " << without_prefix(e.what())
                << "\nRun with --help for more information.\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    streams.err << "kvscope: " << without_prefix(e.what()) << "\n";
    return kExitFailure;
  }
  return kExitUsage;  // unreachable: a subcommand is required
}

}  // namespace kvscope::cli
