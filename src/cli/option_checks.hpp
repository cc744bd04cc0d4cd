// CLI11 validators whose failures read as plain sentences naming the range
// in plain numbers ("--requests must be >= 1", "--shards must be 0 .. 1024"),
// where CLI11's own Range and PositiveNumber print their bounds as
// 0.000000 and 1.797693e+308. The flag's name is put in front by run_cli().
//
// Thread rules: built while the CLI is set up; pure.
#pragma once

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <string>

namespace kvscope::cli {

namespace detail {

inline CLI::Validator numeric_check(double low, double high, std::string failure,
                                    std::string description) {
  return CLI::Validator(
      [low, high, failure](std::string& input) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(input, value) || value < low || value > high) return failure;
        return {};
      },
      std::move(description));
}

}  // namespace detail

/// Accepts numbers >= low.
inline CLI::Validator at_least(double low) {
  return detail::numeric_check(low, 1e300, fmt::format("must be >= {}", low),
                               fmt::format(">= {}", low));
}

/// Accepts numbers in [low, high].
inline CLI::Validator between(double low, double high) {
  return detail::numeric_check(low, high, fmt::format("must be {} .. {}", low, high),
                               fmt::format("{} .. {}", low, high));
}

}  // namespace kvscope::cli
