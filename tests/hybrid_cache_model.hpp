// A reference model of PrefixCache with KV cache groups (hybrid attention)
// and a driver of random operations checked against it step by step. Shared
// by the randomized unit test and the prefix_cache fuzz target.
//
// The model is written from docs/prefix-cache.md's rules, not from the
// cache's code: the hybrid hit is found by brute force (the largest multiple
// of the scheduler block size, up to the cap, that every group can serve: a
// full-attention group with all its blocks before it cached, a sliding-window
// group with its window's blocks before it cached, or all of them from block
// 0), caching follows the retention mask computed here, and decode releases
// whole blocks before each window. LRU only, so every block id is predicted:
// uncached free blocks are reused first (released ones at the front), then
// the least recently released cached block; a block whose key is already
// cached stays private and takes the key over when the holder is evicted.
//
// After every operation: the status, the hit, every group's block table,
// every block's ref count and key, find(hash, group), the free count,
// check_invariants(), and the KV event stream (stores and removals applied
// to a subscriber's set, which must equal the cached keys; a full-attention
// store's parent must be known).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <list>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "kvscope/cache_events.hpp"
#include "kvscope/events/kv_event_codec.hpp"
#include "kvscope/prefix_cache.hpp"
#include "prefix_cache_model.hpp"

namespace kvscope::testing_util {

inline constexpr std::uint32_t kNoEntry = UINT32_MAX;

struct GroupKey {
  BlockHash hash;
  std::uint32_t group = 0;
  auto operator<=>(const GroupKey&) const = default;
};

class HybridModel {
 public:
  struct Req {
    std::vector<TokenId> tokens;
    ExtraKeys extras;
    std::vector<BlockHash> chain;
    std::vector<std::vector<std::uint32_t>> tables;
    std::vector<std::uint32_t> decided, released;
  };

  explicit HybridModel(const PrefixCacheConfig& c)
      : cfg_(c),
        n_(c.num_blocks),
        h_(c.block_size),
        hasher_(c.block_size, c.hash_seed),
        ref_(n_, 0),
        key_(n_),
        twin_key_(n_) {
    std::uint64_t l = 1;
    for (const auto& g : c.groups) l = std::lcm(l, std::uint64_t{g.block_size});
    lcm_ = static_cast<std::uint32_t>(l);
    for (std::uint32_t b = 0; b < n_; ++b) uncached_.push_back(b);
  }

  std::uint32_t groups() const { return static_cast<std::uint32_t>(cfg_.groups.size()); }
  std::uint32_t bs(std::uint32_t g) const { return cfg_.groups[g].block_size; }
  std::uint32_t per(std::uint32_t g) const { return bs(g) / h_; }
  bool sliding(std::uint32_t g) const {
    return cfg_.groups[g].kind == AttentionKind::sliding_window;
  }
  std::uint32_t need(std::uint32_t g) const {
    const std::uint32_t w = cfg_.groups[g].sliding_window;
    return std::max<std::uint32_t>(1, (w - 1 + bs(g) - 1) / bs(g));
  }
  static std::uint32_t ceil_div(std::uint64_t a, std::uint32_t b) {
    return static_cast<std::uint32_t>((a + b - 1) / b);
  }
  std::uint32_t num_free() const {
    return static_cast<std::uint32_t>(uncached_.size() + evictable_.size());
  }
  GroupKey key_of(const std::vector<BlockHash>& chain, std::uint32_t g, std::uint32_t i) const {
    return {chain[(i + 1) * per(g) - 1], g};
  }
  std::optional<std::uint32_t> where(const GroupKey& k) const {
    const auto it = where_.find(k);
    if (it == where_.end()) return std::nullopt;
    return it->second;
  }
  bool cached(const std::vector<BlockHash>& chain, std::uint32_t g, std::uint32_t i) const {
    return where(key_of(chain, g, i)).has_value();
  }

  /// Whether group g can serve a hit of t tokens (t a multiple of every
  /// block size), and with how many leading placeholders.
  std::optional<std::uint32_t> serves(const std::vector<BlockHash>& chain, std::uint32_t g,
                                      std::uint32_t t) const {
    const std::uint32_t blocks = t / bs(g);
    if (sliding(g) && blocks >= need(g)) {
      bool window = true;
      for (std::uint32_t i = blocks - need(g); i < blocks; ++i)
        window = window && cached(chain, g, i);
      if (window) return blocks - need(g);
    }
    for (std::uint32_t i = 0; i < blocks; ++i)
      if (!cached(chain, g, i)) return std::nullopt;
    return 0;
  }

  struct Hit {
    std::uint32_t tokens = 0;
    std::vector<std::uint32_t> placeholders;
  };
  Hit hit(const std::vector<BlockHash>& chain, std::uint32_t max_tokens) const {
    for (std::uint32_t t = max_tokens / lcm_ * lcm_;; t -= lcm_) {
      Hit out{t, std::vector<std::uint32_t>(groups(), 0)};
      bool all = true;
      for (std::uint32_t g = 0; g < groups() && all; ++g) {
        const auto p = serves(chain, g, t);
        all = p.has_value();
        if (all) out.placeholders[g] = *p;
      }
      if (all) return out;
    }
  }

  bool retained(std::uint32_t g, std::uint32_t i) const {
    if (!sliding(g)) return true;
    const std::uint32_t segment = lcm_ / bs(g);
    const std::uint32_t k = (cfg_.groups[g].sliding_window - 1 + bs(g) - 1) / bs(g);
    return k >= segment || i % segment >= segment - k;
  }

  std::uint32_t take() {
    std::uint32_t b;
    if (!uncached_.empty()) {
      b = uncached_.front();
      uncached_.pop_front();
    } else {
      b = evictable_.front();
      evictable_.pop_front();
      const GroupKey k = *key_[b];
      where_.erase(k);
      key_[b].reset();
      removed_.push_back(k);
      promote_twin(k);
    }
    ref_[b] = 1;
    return b;
  }
  void promote_twin(const GroupKey& k) {
    const auto it = twins_.find(k);
    if (it == twins_.end()) {
      return;
    }
    const std::uint32_t b = *it->second.begin();
    forget_twin(b);
    where_[k] = b;
    key_[b] = k;
    removed_.pop_back();  // the key stays cached: no removal
  }
  void forget_twin(std::uint32_t b) {
    if (!twin_key_[b]) return;
    const auto it = twins_.find(*twin_key_[b]);
    it->second.erase(b);
    if (it->second.empty()) twins_.erase(it);
    twin_key_[b].reset();
  }
  void touch(std::uint32_t b) {
    if (ref_[b]++ == 0) evictable_.remove(b);
  }
  void release(std::uint32_t b) {
    if (--ref_[b] != 0) return;
    if (key_[b]) {
      evictable_.push_back(b);
    } else {
      uncached_.push_front(b);
      forget_twin(b);
    }
  }
  void cache(std::uint32_t b, const GroupKey& k) {
    if (where(k)) {
      twin_key_[b] = k;
      twins_[k].insert(b);
      return;
    }
    where_[k] = b;
    key_[b] = k;
  }
  void cache_decided(Req& r) {
    const std::uint64_t hashed = std::uint64_t{r.chain.size()} * h_;
    const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(r.tokens.size(), hashed));
    const std::uint32_t cacheable = n / lcm_ * lcm_;
    for (std::uint32_t g = 0; g < groups(); ++g) {
      for (std::uint32_t i = r.decided[g]; i < cacheable / bs(g); ++i)
        if (r.tables[g][i] != kNoEntry && retained(g, i))
          cache(r.tables[g][i], key_of(r.chain, g, i));
      r.decided[g] = std::max(r.decided[g], cacheable / bs(g));
    }
  }

  PrefixCacheConfig cfg_;
  std::uint32_t n_, h_, lcm_ = 1;
  BlockHasher hasher_;
  std::vector<std::uint32_t> ref_;
  std::vector<std::optional<GroupKey>> key_, twin_key_;
  std::map<GroupKey, std::uint32_t> where_;
  std::map<GroupKey, std::set<std::uint32_t>> twins_;
  std::deque<std::uint32_t> uncached_;
  std::list<std::uint32_t> evictable_;
  std::vector<GroupKey> removed_;  // this operation's removals (for the event check)
  std::map<std::uint64_t, Req> live_;
};

/// Random operations on one hybrid cache, each checked against HybridModel.
class HybridRandomOps {
 public:
  HybridRandomOps(const PrefixCacheConfig& config, Choices& choices)
      : choices_(choices), cache_(config), model_(config) {
    cache_.set_event_log(&log_);
  }

  bool step(int index) {
    const std::uint32_t dice = choices_.uniform(0, 99);
    model_.removed_.clear();
    if (dice < 40) {
      op_allocate();
    } else if (dice < 70) {
      op_append();
    } else if (dice < 95) {
      op_free();
    } else {
      op_lookup();
    }
    if (!::testing::Test::HasFailure()) check_state();
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "stopped at step " << index << " after " << last_op_;
      return false;
    }
    return true;
  }

  void drain() {
    while (!model_.live_.empty()) {
      model_.removed_.clear();
      free_request(model_.live_.begin()->first);
      check_state();
    }
    EXPECT_EQ(cache_.num_used_blocks(), 0u);
  }

  struct Coverage {
    int hits = 0, placeholder_hits = 0, released = 0, not_enough = 0, twins = 0, evictions = 0;
  };
  const Coverage& coverage() const { return cov_; }

 private:
  std::vector<TokenId> prompt() {
    const int family = static_cast<int>(choices_.uniform(0, 2));
    const std::uint32_t shared = choices_.uniform(0, 60);
    std::vector<TokenId> tokens;
    for (std::uint32_t i = 0; i < shared; ++i) tokens.push_back(family_token(family, i));
    // Now and then a long private tail: pool pressure, refusals.
    const std::uint32_t tail = choices_.chance(0.05) ? choices_.uniform(40, 200)
                                                     : choices_.uniform(shared == 0 ? 1 : 0, 6);
    for (std::uint32_t i = 0; i < tail; ++i) tokens.push_back(next_unique_++);
    return tokens;
  }

  void op_allocate() {
    HybridModel& m = model_;
    const std::uint64_t id = choices_.uniform(1, 12);
    std::vector<TokenId> tokens = prompt();
    ExtraKeys extras;
    if (choices_.chance(0.2)) extras.salt = CacheSalt::from_string("tenant-b");
    const Request r = Request::with_tokens(RequestId{id}, tokens, extras);
    std::ostringstream os;
    os << "allocate id=" << id << " tokens=" << tokens.size();
    last_op_ = os.str();
    const auto res = cache_.allocate(r);

    std::vector<BlockHash> chain;
    m.hasher_.extend_hashes(tokens, extras, chain);
    const auto t = static_cast<std::uint32_t>(tokens.size());
    std::uint64_t total = 0;
    for (std::uint32_t g = 0; g < m.groups(); ++g) total += m.ceil_div(t, m.bs(g));
    const auto hit = m.hit(chain, std::min<std::uint64_t>(t - 1, chain.size() * m.h_));
    std::uint32_t needed = 0;
    std::set<std::uint32_t> hit_blocks;
    for (std::uint32_t g = 0; g < m.groups(); ++g) {
      needed += m.ceil_div(t, m.bs(g)) - hit.tokens / m.bs(g);
      for (std::uint32_t i = hit.placeholders[g]; i < hit.tokens / m.bs(g); ++i) {
        const std::uint32_t b = *m.where(m.key_of(chain, g, i));
        if (m.ref_[b] == 0) hit_blocks.insert(b);
      }
    }
    needed += static_cast<std::uint32_t>(hit_blocks.size());
    // Any applicable refusal is accepted (the order of checks is not part
    // of the contract), and nothing may change.
    const bool duplicate = m.live_.count(id) != 0;
    const bool too_large = total > m.n_;
    const bool too_few = !too_large && needed > m.num_free();
    if (duplicate || too_large || too_few) {
      const Status st = res.status();
      EXPECT_TRUE((duplicate && st == Status::duplicate_request) ||
                  (too_large && st == Status::request_too_large) ||
                  (too_few && st == Status::not_enough_blocks))
          << to_string(st);
      cov_.not_enough += too_few ? 1 : 0;
      return;
    }
    ASSERT_TRUE(res.ok()) << to_string(res.status());
    EXPECT_EQ(res->lookup.hit_tokens, hit.tokens);
    cov_.hits += hit.tokens > 0 ? 1 : 0;
    HybridModel::Req req{tokens, extras, chain, {}, {}, {}};
    req.tables.resize(m.groups());
    req.decided.assign(m.groups(), 0);
    req.released.assign(m.groups(), 0);
    for (std::uint32_t g = 0; g < m.groups(); ++g) {
      req.tables[g].assign(m.ceil_div(t, m.bs(g)), kNoEntry);
      for (std::uint32_t i = hit.placeholders[g]; i < hit.tokens / m.bs(g); ++i) {
        req.tables[g][i] = *m.where(m.key_of(chain, g, i));
        m.touch(req.tables[g][i]);
      }
      req.released[g] = hit.placeholders[g];
      req.decided[g] = hit.tokens / m.bs(g);
      cov_.placeholder_hits += hit.placeholders[g] > 0 ? 1 : 0;
    }
    for (std::uint32_t g = 0; g < m.groups(); ++g)
      for (std::uint32_t i = hit.tokens / m.bs(g); i < req.tables[g].size(); ++i)
        req.tables[g][i] = m.take();
    m.cache_decided(req);
    m.live_[id] = std::move(req);
  }

  void op_append() {
    if (model_.live_.empty()) return;
    HybridModel& m = model_;
    auto it = m.live_.begin();
    std::advance(it, choices_.uniform(0, static_cast<std::uint32_t>(m.live_.size() - 1)));
    const std::uint64_t id = it->first;
    HybridModel::Req& req = it->second;
    const std::uint32_t n = choices_.uniform(1, 12);
    std::vector<TokenId> added;
    for (std::uint32_t i = 0; i < n; ++i) added.push_back(next_unique_++);
    last_op_ = "append id=" + std::to_string(id) + " tokens=" + std::to_string(n);
    const auto res = cache_.append(RequestId{id}, added);

    const auto before = static_cast<std::uint32_t>(req.tokens.size());
    const std::uint32_t after = before + n;
    std::uint64_t live_after = 0;
    std::uint32_t extra = 0, freed = 0;
    std::vector<std::uint32_t> release_to(m.groups());
    for (std::uint32_t g = 0; g < m.groups(); ++g) {
      const auto size = static_cast<std::uint32_t>(req.tables[g].size());
      std::uint32_t skip = 0;
      const std::uint32_t w = m.cfg_.groups[g].sliding_window;
      if (m.sliding(g) && before >= w) skip = (before - w + 1) / m.bs(g);
      release_to[g] = std::max(req.released[g], std::min(skip, size));
      for (std::uint32_t i = req.released[g]; i < release_to[g]; ++i)
        freed += m.ref_[req.tables[g][i]] == 1 ? 1 : 0;
      extra += m.ceil_div(after, m.bs(g)) - size;
      live_after += m.ceil_div(after, m.bs(g)) - release_to[g];
    }
    if (live_after > m.n_) {
      EXPECT_EQ(res.status(), Status::request_too_large);
      return;
    }
    if (extra > m.num_free() + freed) {
      EXPECT_EQ(res.status(), Status::not_enough_blocks);
      ++cov_.not_enough;
      return;
    }
    ASSERT_TRUE(res.ok()) << to_string(res.status());
    for (std::uint32_t g = 0; g < m.groups(); ++g) {
      for (std::uint32_t i = release_to[g]; i-- > req.released[g];) {
        m.release(req.tables[g][i]);
        req.tables[g][i] = kNoEntry;
        ++cov_.released;
      }
      req.released[g] = release_to[g];
    }
    for (std::uint32_t g = 0; g < m.groups(); ++g)
      while (req.tables[g].size() < m.ceil_div(after, m.bs(g))) req.tables[g].push_back(m.take());
    req.tokens.insert(req.tokens.end(), added.begin(), added.end());
    req.chain.clear();
    m.hasher_.extend_hashes(req.tokens, req.extras, req.chain);
    m.cache_decided(req);
  }

  void free_request(std::uint64_t id) {
    last_op_ = "free id=" + std::to_string(id);
    HybridModel& m = model_;
    const auto res = cache_.free(RequestId{id});
    ASSERT_TRUE(res.ok());
    for (auto& table : m.live_[id].tables)
      for (auto b = table.rbegin(); b != table.rend(); ++b)
        if (*b != kNoEntry) m.release(*b);
    m.live_.erase(id);
  }

  void op_free() {
    if (model_.live_.empty()) return;
    auto it = model_.live_.begin();
    std::advance(it, choices_.uniform(0, static_cast<std::uint32_t>(model_.live_.size() - 1)));
    free_request(it->first);
  }

  void op_lookup() {
    const std::vector<TokenId> tokens = prompt();
    last_op_ = "lookup tokens=" + std::to_string(tokens.size());
    const auto res = cache_.lookup(Request::with_tokens(RequestId{999}, tokens));
    ASSERT_TRUE(res.ok());
    std::vector<BlockHash> chain;
    model_.hasher_.extend_hashes(tokens, {}, chain);
    const auto t = static_cast<std::uint32_t>(tokens.size());
    EXPECT_EQ(res->hit_tokens,
              model_.hit(chain, std::min<std::uint64_t>(t - 1, chain.size() * model_.h_)).tokens);
  }

  void check_state() {
    HybridModel& m = model_;
    cache_.check_invariants();
    EXPECT_EQ(cache_.num_free_blocks(), m.num_free());
    for (std::uint32_t b = 0; b < m.n_; ++b) {
      ASSERT_EQ(cache_.ref_count(BlockId{b}), m.ref_[b]) << "block " << b;
      ASSERT_EQ(cache_.block_hash(BlockId{b}).has_value(), m.key_[b].has_value()) << "block " << b;
      if (m.key_[b]) {
        const auto found = cache_.find(m.key_[b]->hash, m.key_[b]->group);
        ASSERT_TRUE(found.has_value() && found->value == b) << "block " << b;
      }
      cov_.twins += m.twin_key_[b] ? 1 : 0;
    }
    for (const auto& [id, req] : m.live_) {
      for (std::uint32_t g = 0; g < m.groups(); ++g) {
        const auto table = cache_.block_table(RequestId{id}, g);
        ASSERT_TRUE(table.ok());
        std::vector<std::uint32_t> ids;
        for (const BlockId b : *table) ids.push_back(b.value);
        ASSERT_EQ(ids, req.tables[g]) << "request " << id << " group " << g;
      }
    }
    check_events();
  }

  // Applies the operation's events to a subscriber's view; it must equal
  // the model's cached keys, and the removals the model's evictions.
  void check_events() {
    const std::string payload =
        encode_kv_event_batch(log_, 0, 0, KvEventFormat::map, KvHashEncoding::bytes);
    log_.clear();
    const DecodedBatch batch = decode_kv_event_batch(std::as_bytes(std::span(payload)));
    std::vector<GroupKey> removed;
    for (const DecodedEvent& e : batch.events) {
      const auto g = static_cast<std::uint32_t>(e.group_idx.value_or(0));
      auto key = [&](const WireHash& w) { return GroupKey{BlockHash{w.high, w.low}, g}; };
      if (e.kind == DecodedEvent::Kind::stored) {
        EXPECT_EQ(e.kv_cache_spec_kind.value_or(""),
                  std::string(to_string(model_.cfg_.groups[g].kind)));
        if (model_.sliding(g)) {
          EXPECT_EQ(e.kv_cache_spec_sliding_window.value_or(0),
                    std::int64_t{model_.cfg_.groups[g].sliding_window});
        } else if (e.parent_block_hash) {
          EXPECT_TRUE(seen_.contains(key(*e.parent_block_hash))) << "parent not seen";
        }
        for (const WireHash& w : e.block_hashes)
          EXPECT_TRUE(seen_.insert(key(w)).second) << "repeated store";
      } else if (e.kind == DecodedEvent::Kind::removed) {
        for (const WireHash& w : e.block_hashes) {
          EXPECT_EQ(seen_.erase(key(w)), 1u) << "removal of an unknown key";
          removed.push_back(key(w));
        }
      }
    }
    EXPECT_EQ(removed, model_.removed_);
    cov_.evictions += static_cast<int>(removed.size());
    std::set<GroupKey> cached;
    for (const auto& [k, b] : model_.where_) cached.insert(k);
    EXPECT_EQ(seen_, cached);
  }

  Choices& choices_;
  PrefixCache cache_;
  HybridModel model_;
  CacheEventLog log_;
  std::set<GroupKey> seen_;
  TokenId next_unique_ = 2'000'000;
  std::string last_op_;
  Coverage cov_;
};

}  // namespace kvscope::testing_util
