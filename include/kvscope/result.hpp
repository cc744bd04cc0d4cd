// kvscope/result.hpp - expected outcomes as values with a reason.
//
// Operations whose "failure" is an ordinary outcome (a miss, a full pool, an
// unknown request id) return Result<T>: either a value or a Status saying why
// not. A failed operation has changed nothing. Bugs and bad configuration are
// exceptions instead (std::invalid_argument, std::logic_error).
//
// libstdc++ 12 has no std::expected in C++20, hence this small type.
#pragma once

#include <stdexcept>
#include <string_view>
#include <utility>

namespace kvscope {

/// Why an operation did not happen. Every value but `ok` leaves state unchanged.
enum class Status {
  ok,
  not_enough_blocks,  ///< fewer free blocks than the operation needs right now
  request_too_large,  ///< needs more blocks than the whole pool holds
  unknown_request,    ///< no live request with that id
  duplicate_request,  ///< a live request already has that id
  empty_request,      ///< no tokens
  blocks_in_use,      ///< reset refused: some block has a non-zero ref count
  request_sealed,     ///< append to a request whose last partial block was given a hash
  invalid_hashes,     ///< hash count does not match the token count
  not_running,        ///< runtime not started, or stopped: the operation did not run
  unknown_shard,      ///< runtime shard index out of range
};

/// Stable lower-case name, e.g. "not_enough_blocks".
std::string_view to_string(Status status) noexcept;

/// Thrown by Result::value() on a failed result: a caller bug.
class BadResultAccess : public std::logic_error {
 public:
  explicit BadResultAccess(Status status);
  Status status() const noexcept { return status_; }

 private:
  Status status_;
};

/// A value, or the Status that explains its absence.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : status_(Status::ok), value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status failure) : status_(failure), value_() {}              // NOLINT: implicit by design

  bool ok() const noexcept { return status_ == Status::ok; }
  explicit operator bool() const noexcept { return ok(); }
  Status status() const noexcept { return status_; }

  /// Precondition: ok(). Throws BadResultAccess otherwise.
  const T& value() const& {
    if (!ok()) throw BadResultAccess(status_);
    return value_;
  }
  T& value() & {
    if (!ok()) throw BadResultAccess(status_);
    return value_;
  }
  const T* operator->() const { return &value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  T value_;
};

/// Result of an operation that yields nothing but success or a reason.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Status status) : status_(status) {}  // NOLINT: implicit by design
  bool ok() const noexcept { return status_ == Status::ok; }
  explicit operator bool() const noexcept { return ok(); }
  Status status() const noexcept { return status_; }

 private:
  Status status_ = Status::ok;
};

}  // namespace kvscope
