// Private: names a thread so that top -H, perf and /proc/<pid>/task show
// which of kvscope's threads is which (shards "kvs-shard-<i>", "kvs-control",
// "kvs-notify", the KV event publisher "kvs-events"). Linux keeps at most 15
// characters; a longer name is cut. Best effort: a failure changes nothing
// else. Call from the thread that owns `thread`, before anyone depends on
// the name.
#pragma once

#include <pthread.h>

#include <string>
#include <thread>

namespace kvscope::detail {

inline void name_thread(std::thread& thread, const std::string& name) noexcept {
  const std::string cut = name.substr(0, 15);
  (void)pthread_setname_np(thread.native_handle(), cut.c_str());
}

}  // namespace kvscope::detail
