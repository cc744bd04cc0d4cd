#include "kvscope/result.hpp"

#include <string>

namespace kvscope {

std::string_view to_string(Status status) noexcept {
  switch (status) {
    case Status::ok: return "ok";
    case Status::not_enough_blocks: return "not_enough_blocks";
    case Status::request_too_large: return "request_too_large";
    case Status::unknown_request: return "unknown_request";
    case Status::duplicate_request: return "duplicate_request";
    case Status::empty_request: return "empty_request";
    case Status::blocks_in_use: return "blocks_in_use";
    case Status::request_sealed: return "request_sealed";
    case Status::invalid_hashes: return "invalid_hashes";
    case Status::not_running: return "not_running";
    case Status::unknown_shard: return "unknown_shard";
  }
  return "unknown_status";
}

BadResultAccess::BadResultAccess(Status status)
    : std::logic_error("kvscope: value() called on a failed Result (status " +
                       std::string(to_string(status)) + ")"),
      status_(status) {}

}  // namespace kvscope
