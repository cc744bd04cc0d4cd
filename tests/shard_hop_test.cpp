// async_run_on: where fn runs, where the caller resumes, failures, and the
// lifetime guarantees listed in shard_hop.hpp.
#include "kvscope/runtime/shard_hop.hpp"

#include <gtest/gtest.h>

#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

namespace kvscope {
namespace {

/// An io_context run by its own thread until destroyed, and its inbox: a
/// stand-in shard. Destruction waits for submitted work to finish.
class ShardThread {
 public:
  explicit ShardThread(std::chrono::nanoseconds poll = std::chrono::nanoseconds(0))
      : work_(asio::make_work_guard(io_)),
        inbox_(io_.get_executor(), poll),
        thread_([this] { io_.run(); }) {}
  ~ShardThread() {
    work_.reset();
    thread_.join();
  }
  ShardInbox& inbox() { return inbox_; }
  std::thread::id id() const { return thread_.get_id(); }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  ShardInbox inbox_;
  std::thread thread_;
};

/// Rethrows a coroutine's exception into the test.
void rethrow_if(std::exception_ptr failure) {
  if (failure) std::rethrow_exception(failure);
}

asio::awaitable<void> hop_and_check(ShardInbox& shard, std::thread::id shard_thread, int& result) {
  const auto home = std::this_thread::get_id();
  auto on_shard = [shard_thread] {
    EXPECT_EQ(std::this_thread::get_id(), shard_thread);
    return 42;
  };
  result = co_await async_run_on(shard, on_shard, asio::use_awaitable);
  EXPECT_EQ(std::this_thread::get_id(), home);  // resumed on the caller's executor
}

TEST(ShardHop, RunsOnTheShardAndResumesOnTheCallersExecutor) {
  ShardThread shard;
  asio::io_context caller;
  int result = 0;
  asio::co_spawn(caller, hop_and_check(shard.inbox(), shard.id(), result), rethrow_if);
  caller.run();  // returns only after the coroutine finished: the hop held work
  EXPECT_EQ(result, 42);
}

asio::awaitable<void> hop_that_throws(ShardInbox& shard, bool& caught) {
  auto failing = []() -> int { throw std::runtime_error("shard failure"); };
  try {
    (void)co_await async_run_on(shard, failing, asio::use_awaitable);
  } catch (const std::runtime_error& e) {
    caught = std::string(e.what()) == "shard failure";
  }
}

TEST(ShardHop, AnExceptionOnTheShardIsRethrownInTheCaller) {
  ShardThread shard;
  asio::io_context caller;
  bool caught = false;
  asio::co_spawn(caller, hop_that_throws(shard.inbox(), caught), rethrow_if);
  caller.run();
  EXPECT_TRUE(caught);
}

TEST(ShardHop, AResultPlaceholderAccompaniesAnException) {
  ShardThread shard;
  auto failing = []() -> Result<int> { throw std::runtime_error("x"); };
  std::promise<std::pair<bool, Status>> delivered;
  async_run_on(shard.inbox(), failing, [&](std::exception_ptr e, Result<int> r) {
    delivered.set_value({e != nullptr, r.status()});
  });
  const auto [had_exception, status] = delivered.get_future().get();
  EXPECT_TRUE(had_exception);
  EXPECT_EQ(status, Status::not_running);
}

TEST(ShardHop, VoidWorkCompletesWithOnlyAnExceptionPointer) {
  ShardThread shard;
  std::atomic<int> runs{0};
  auto work = [&runs] { runs.fetch_add(1); };
  auto done = async_run_on(shard.inbox(), work, asio::use_future);
  done.get();
  EXPECT_EQ(runs.load(), 1);
}

TEST(ShardHop, AHandlerWithoutAnExecutorCompletesOnTheShard) {
  ShardThread shard;
  std::promise<std::thread::id> completed_on;
  auto work = [] { return 1; };
  async_run_on(shard.inbox(), work, [&](std::exception_ptr, int) {
    completed_on.set_value(std::this_thread::get_id());
  });
  EXPECT_EQ(completed_on.get_future().get(), shard.id());
}

asio::awaitable<void> many_hops_to_own_executor(ShardInbox& self, int hops, int& done) {
  auto increment = [&done] { return ++done; };
  for (int i = 0; i < hops; ++i) (void)co_await async_run_on(self, increment, asio::use_awaitable);
}

TEST(ShardHop, HoppingToTheCallersOwnExecutorDoesNotRecurse) {
  // With dispatch, each hop would run inline and nest one frame deeper; with
  // post the stack stays flat however many hops there are.
  asio::io_context single;
  ShardInbox inbox(single.get_executor());
  int done = 0;
  asio::co_spawn(single, many_hops_to_own_executor(inbox, 200'000, done), rethrow_if);
  single.run();
  EXPECT_EQ(done, 200'000);
}

TEST(ShardHop, WorkNeverRunIsDestroyedWithItsHandler) {
  auto tracker = std::make_shared<int>(0);
  std::weak_ptr<int> alive = tracker;
  bool completed = false;
  {
    asio::io_context never_run;
    ShardInbox inbox(never_run.get_executor());
    auto work = [held = std::move(tracker)] { return *held; };
    async_run_on(inbox, work, [&](std::exception_ptr, int) { completed = true; });
    EXPECT_FALSE(alive.expired());
  }  // the inbox destroys the op unrun, the io_context its pending drain
  EXPECT_TRUE(alive.expired());
  EXPECT_FALSE(completed);
}

TEST(ShardHop, AThrowingHandlerDoesNotStrandTheRestOfItsBatch) {
  asio::io_context shard;  // polled by hand: all three ops land in one batch
  ShardInbox inbox(shard.get_executor());
  asio::io_context caller;
  int completed = 0;
  auto work = [] { return 1; };
  auto throwing = [&](std::exception_ptr, int) {
    ++completed;
    throw std::runtime_error("handler failure");
  };
  auto counting = [&](std::exception_ptr, int) { ++completed; };
  async_run_on(inbox, work, asio::bind_executor(caller, throwing));
  async_run_on(inbox, work, asio::bind_executor(caller, counting));
  async_run_on(inbox, work, asio::bind_executor(caller, counting));
  shard.poll();
  EXPECT_THROW(caller.run(), std::runtime_error);
  EXPECT_EQ(completed, 1);
  caller.restart();
  caller.run();
  EXPECT_EQ(completed, 3);
}

TEST(ShardHop, OpsFromDifferentExecutorsInOneBatchEachCompleteAtHome) {
  asio::io_context shard;
  ShardInbox inbox(shard.get_executor());
  asio::io_context first;
  asio::io_context second;
  int on_first = 0;
  int on_second = 0;
  auto work = [] { return 1; };
  auto check_first = [&](std::exception_ptr, int) {
    on_first += first.get_executor().running_in_this_thread() ? 1 : 0;
  };
  auto check_second = [&](std::exception_ptr, int) {
    on_second += second.get_executor().running_in_this_thread() ? 1 : 0;
  };
  for (int i = 0; i < 3; ++i) {
    async_run_on(inbox, work, asio::bind_executor(first, check_first));
    async_run_on(inbox, work, asio::bind_executor(second, check_second));
  }
  shard.poll();
  EXPECT_EQ(on_first + on_second, 0);  // nothing completes inline on the shard
  first.run();
  second.run();
  EXPECT_EQ(on_first, 3);
  EXPECT_EQ(on_second, 3);
}

asio::awaitable<void> counting_client(ShardInbox& shard, int hops,
                                      std::shared_ptr<std::atomic<int>> total) {
  auto bump = [total] { return total->fetch_add(1) + 1; };
  for (int i = 0; i < hops; ++i) (void)co_await async_run_on(shard, bump, asio::use_awaitable);
}

TEST(ShardHop, ManyCoroutinesOnTwoCallerThreadsAllComplete) {
  ShardThread shard;
  auto total = std::make_shared<std::atomic<int>>(0);
  asio::io_context callers;
  constexpr int kCoroutines = 256;
  constexpr int kHops = 50;
  for (int c = 0; c < kCoroutines; ++c)
    asio::co_spawn(callers, counting_client(shard.inbox(), kHops, total), rethrow_if);
  std::thread second([&] { callers.run(); });
  callers.run();
  second.join();
  EXPECT_EQ(total->load(), kCoroutines * kHops);
}

// A polling shard: everything completes, on the right threads, and the
// work of one submitting thread runs in its submission order.
TEST(ShardHop, APollingShardRunsEverythingInSubmissionOrder) {
  ShardThread shard(std::chrono::microseconds(50));
  auto total = std::make_shared<std::atomic<int>>(0);
  asio::io_context callers;
  for (int c = 0; c < 128; ++c)
    asio::co_spawn(callers, counting_client(shard.inbox(), 40, total), rethrow_if);
  std::thread second([&] { callers.run(); });
  callers.run();
  second.join();
  EXPECT_EQ(total->load(), 128 * 40);

  std::vector<int> ran;  // shard thread only, read after the futures
  std::vector<std::future<int>> done;
  for (int i = 0; i < 1000; ++i) {
    auto record = [&ran, i] {
      ran.push_back(i);
      return i;
    };
    done.push_back(async_run_on(shard.inbox(), record, asio::use_future));
  }
  for (auto& f : done) f.get();
  std::vector<int> expected(1000);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(ran, expected);
  EXPECT_THROW(ShardInbox(shard.inbox().executor(), std::chrono::nanoseconds(-1)),
               std::invalid_argument);
}

/// Two operations drained together (a gate holds the shard until both are
/// queued), the first short, the second 50 ms: returns whether the first
/// one's completion ran before the second ended.
bool first_completes_during_second(bool caller_marked_as_shard) {
  ShardThread shard;
  asio::io_context caller;
  std::atomic<bool> second_done{false};
  bool first_completed_early = false;
  auto busy = [](std::chrono::microseconds how_long) {
    const auto until = std::chrono::steady_clock::now() + how_long;
    while (std::chrono::steady_clock::now() < until) {
    }
  };
  auto first = [&] {
    busy(std::chrono::microseconds(10));  // longer than a completion chunk
    return 1;
  };
  auto second = [&] {
    busy(std::chrono::milliseconds(50));
    second_done = true;
    return 2;
  };
  auto on_first = [&](std::exception_ptr, int) { first_completed_early = !second_done.load(); };
  auto on_second = [](std::exception_ptr, int) {};
  std::atomic<bool> both_queued{false};
  auto gate = [&] {
    while (!both_queued.load()) {
    }
    return 0;
  };
  std::thread caller_thread([&] {
    if (caller_marked_as_shard) detail::mark_shard_thread();
    asio::post(caller, [&] {
      async_run_on(shard.inbox(), gate, asio::bind_executor(caller, on_second));
      async_run_on(shard.inbox(), first, asio::bind_executor(caller, on_first));
      async_run_on(shard.inbox(), second, asio::bind_executor(caller, on_second));
      both_queued = true;
    });
    caller.run();
  });
  caller_thread.join();
  return first_completed_early;
}

// Completions go out in chunks while a drain goes on, so a caller on
// another thread resumes while the shard still works; a caller on a shard
// thread (busy with its own shard) gets them when the drain ends.
TEST(ShardHop, CompletionsReachOtherThreadsBeforeTheDrainEndsButShardThreadsAfter) {
  EXPECT_TRUE(first_completes_during_second(false));
  EXPECT_FALSE(first_completes_during_second(true));
}

}  // namespace
}  // namespace kvscope
