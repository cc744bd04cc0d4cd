// The `kvscope` command line: `kvscope bench` (the main job: a load run of
// the Runtime), `kvscope replay` (a Mooncake trace through the cache core)
// and `kvscope events` (watch and check a KV cache event stream). Arguments are parsed with CLI11
// (Debian's libcli11-dev): typed options, range checks, help text and error messages we do not
// write.
//
// Callable in-process (the tests do): output goes to the given streams,
// nothing is read from the environment except what the arguments name.
#pragma once

#include <ostream>

namespace kvscope::cli {

struct CliStreams {
  std::ostream& out;
  std::ostream& err;
  /// `out` is a terminal: progress redraws one line instead of printing lines.
  bool interactive = false;
};

/// Exit codes: 0 success; 2 bad arguments, alone or in combination (e.g.
/// fewer blocks than shards): the message and a hint to --help on err; 1 a
/// failure while running: a bad trace line, an unwritable file, or a bench
/// run in which some request was given up (the report counts them by status).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

/// Parses `argv` (argv[0] is the program name) and runs the command.
int run_cli(int argc, const char* const* argv, const CliStreams& streams);

}  // namespace kvscope::cli
