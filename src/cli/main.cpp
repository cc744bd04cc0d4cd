// kvscope: the command-line entry point (see src/cli/cli.hpp).
#include <unistd.h>

#include <iostream>

#include "cli.hpp"

int main(int argc, char** argv) {
  const kvscope::cli::CliStreams streams{std::cout, std::cerr, isatty(STDOUT_FILENO) == 1};
  return kvscope::cli::run_cli(argc, argv, streams);
}
