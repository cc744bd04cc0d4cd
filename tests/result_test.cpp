// Result<T>, Status names and eviction-policy names.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "kvscope/eviction_policy.hpp"
#include "kvscope/result.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

TEST(Result, HoldsAValueWhenConstructedFromOne) {
  Result<int> r = 42;
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.status(), Status::ok);
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(*r, 42);
}

TEST(Result, HoldsAStatusWhenConstructedFromAFailure) {
  Result<int> r = Status::unknown_request;
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.status(), Status::unknown_request);
}

TEST(Result, ValueOfAFailureThrowsBadResultAccessCarryingTheStatus) {
  const Result<std::string> r = Status::not_enough_blocks;
  try {
    (void)r.value();
    FAIL() << "value() of a failed result must throw";
  } catch (const BadResultAccess& e) {
    EXPECT_EQ(e.status(), Status::not_enough_blocks);
  }
  // BadResultAccess is a logic_error: a caller bug, not an expected outcome.
  EXPECT_THROW((void)r.value(), std::logic_error);
  Result<std::string> mutable_r = Status::empty_request;
  EXPECT_THROW((void)mutable_r.value(), BadResultAccess);
  EXPECT_THROW((void)*r, BadResultAccess);
}

TEST(Result, ArrowAndMutableValueReachTheHeldObject) {
  Result<std::string> r = std::string("abc");
  EXPECT_EQ(r->size(), 3u);
  r.value() += "d";
  EXPECT_EQ(*r, "abcd");
}

TEST(Result, VoidResultIsOkByDefaultAndCarriesAFailure) {
  Result<void> ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_TRUE(static_cast<bool>(ok));
  EXPECT_EQ(ok.status(), Status::ok);
  Result<void> refused = Status::blocks_in_use;
  EXPECT_FALSE(refused.ok());
  EXPECT_FALSE(static_cast<bool>(refused));
  EXPECT_EQ(refused.status(), Status::blocks_in_use);
}

TEST(Status, ToStringGivesTheStableLowerCaseName) {
  EXPECT_EQ(to_string(Status::ok), "ok");
  EXPECT_EQ(to_string(Status::not_enough_blocks), "not_enough_blocks");
  EXPECT_EQ(to_string(Status::request_too_large), "request_too_large");
  EXPECT_EQ(to_string(Status::unknown_request), "unknown_request");
  EXPECT_EQ(to_string(Status::duplicate_request), "duplicate_request");
  EXPECT_EQ(to_string(Status::empty_request), "empty_request");
  EXPECT_EQ(to_string(Status::blocks_in_use), "blocks_in_use");
  EXPECT_EQ(to_string(Status::request_sealed), "request_sealed");
  EXPECT_EQ(to_string(Status::invalid_hashes), "invalid_hashes");
  EXPECT_EQ(to_string(Status::not_running), "not_running");
  EXPECT_EQ(to_string(Status::unknown_shard), "unknown_shard");
}

TEST(EvictionPolicyKind, ToStringGivesTheDocumentedNames) {
  EXPECT_EQ(to_string(EvictionPolicyKind::lru), "lru");
  EXPECT_EQ(to_string(EvictionPolicyKind::lfu), "lfu");
  EXPECT_EQ(to_string(EvictionPolicyKind::arc), "arc");
  EXPECT_EQ(to_string(EvictionPolicyKind::s3fifo), "s3fifo");
}

TEST(EvictionPolicyKind, ParseIsTheInverseOfToString) {
  for (EvictionPolicyKind kind : testing_util::all_policies()) {
    const auto parsed = parse_eviction_policy(to_string(kind));
    ASSERT_TRUE(parsed.has_value()) << to_string(kind);
    EXPECT_EQ(*parsed, kind);
  }
}

TEST(EvictionPolicyKind, ParseRejectsUnknownNames) {
  EXPECT_FALSE(parse_eviction_policy("").has_value());
  EXPECT_FALSE(parse_eviction_policy("fifo").has_value());
  EXPECT_FALSE(parse_eviction_policy("lru ").has_value());
  EXPECT_FALSE(parse_eviction_policy("s3").has_value());
  EXPECT_FALSE(parse_eviction_policy("sieve").has_value());
}

}  // namespace
}  // namespace kvscope
