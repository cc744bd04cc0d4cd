// The shared Mooncake conversation trace (../shared/traces), for tests that
// check kvscope against its exact reference numbers.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "kvscope/trace/mooncake_trace.hpp"

namespace kvscope::testing_util {

inline std::string conversation_trace_path() { return KVSCOPE_CONVERSATION_TRACE; }

/// The trace (or its first `max_requests`), read once per process. When the
/// file is missing the test is skipped, unless KVSCOPE_REQUIRE_TRACE is set
/// (CI sets it): then it fails.
inline const MooncakeTrace* conversation_trace(std::size_t max_requests = SIZE_MAX) {
  static std::optional<MooncakeTrace> full;
  if (!std::filesystem::exists(conversation_trace_path())) {
    if (std::getenv("KVSCOPE_REQUIRE_TRACE") != nullptr)
      ADD_FAILURE() << "missing " << conversation_trace_path();
    return nullptr;
  }
  if (!full) full = read_mooncake_trace(conversation_trace_path());
  static std::optional<MooncakeTrace> slice;
  if (max_requests >= full->requests.size()) return &*full;
  TraceReadOptions options;
  options.max_requests = max_requests;
  slice = read_mooncake_trace(conversation_trace_path(), options);
  return &*slice;
}

}  // namespace kvscope::testing_util

#define KVSCOPE_TRACE_OR_SKIP(var, n)                                                   \
  const ::kvscope::MooncakeTrace* var = ::kvscope::testing_util::conversation_trace(n); \
  if (var == nullptr) GTEST_SKIP() << "conversation trace not found"
