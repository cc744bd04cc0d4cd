#include "cli.hpp"

#include <CLI/CLI.hpp>

#include <exception>
#include <stdexcept>

#include "commands.hpp"

namespace kvscope::cli {

int run_cli(int argc, const char* const* argv, const CliStreams& streams) {
  CLI::App app{"kvscope: a prefix-cache runtime for C++ LLM serving stacks", "kvscope"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kvscope 0.1.0");
  BenchOptions bench;
  ReplayOptions replay;
  CLI::App* bench_command = add_bench_command(app, bench);
  CLI::App* replay_command = add_replay_command(app, replay);
  std::function<int(const CliStreams&)> run_events;
  CLI::App* events_command = add_events_command(app, run_events);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e, streams.out, streams.err);
    return code == 0 ? kExitOk : kExitUsage;
  }
  try {
    if (bench_command->parsed()) return run_bench(bench, streams);
    if (replay_command->parsed()) return run_replay(replay, streams);
    if (events_command->parsed()) return run_events(streams);
  } catch (const std::invalid_argument& e) {  // options valid alone, not together
    streams.err << "kvscope: " << e.what() << "\nRun with --help for more information.\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    streams.err << "kvscope: " << e.what() << "\n";
    return kExitFailure;
  }
  return kExitUsage;  // unreachable: a subcommand is required
}

}  // namespace kvscope::cli
