#include "kvscope/analytics/alerts.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

namespace kvscope {

std::string_view to_string(AlertLevel level) noexcept {
  switch (level) {
    case AlertLevel::info: return "info";
    case AlertLevel::warning: return "warning";
    case AlertLevel::critical: return "critical";
  }
  return "unknown";
}

std::string_view to_string(AlertState state) noexcept {
  switch (state) {
    case AlertState::pending: return "pending";
    case AlertState::firing: return "firing";
    case AlertState::resolved: return "resolved";
  }
  return "unknown";
}

std::string_view to_string(AlertTransition::Kind kind) noexcept {
  switch (kind) {
    case AlertTransition::Kind::fired: return "fired";
    case AlertTransition::Kind::level_changed: return "level_changed";
    case AlertTransition::Kind::resolved: return "resolved";
  }
  return "unknown";
}

void AlertPolicy::validate() const {
  if (pending_intervals < 1)
    throw std::invalid_argument("kvscope: AlertPolicy.pending_intervals must be >= 1, got 0");
  if (keep_firing_intervals < 1)
    throw std::invalid_argument("kvscope: AlertPolicy.keep_firing_intervals must be >= 1, got 0");
}

AlertTracker::AlertTracker(AlertPolicy policy) : policy_(policy) { policy_.validate(); }

AlertTracker::Key AlertTracker::key_of(const Finding& finding) {
  return {finding.detector, finding.metric, finding.shard ? std::int64_t{*finding.shard} : -1};
}

std::size_t AlertTracker::firing_count() const noexcept {
  return static_cast<std::size_t>(std::count_if(tracks_.begin(), tracks_.end(), [](const auto& t) {
    return t.second.alert.state == AlertState::firing;
  }));
}

std::optional<AlertTransition> AlertTracker::seen(Track& track, const Finding& finding,
                                                  Timestamp now) {
  CacheAlert& alert = track.alert;
  ++alert.intervals;
  track.quiet = 0;
  alert.value = finding.value;
  alert.baseline = finding.baseline;
  alert.threshold = finding.threshold;
  alert.message = finding.message;
  if (alert.state == AlertState::pending) {
    alert.level = finding.level;
    if (alert.intervals < policy_.pending_intervals) return std::nullopt;
    alert.state = AlertState::firing;
    alert.fired = now;
    return AlertTransition{AlertTransition::Kind::fired, alert};
  }
  // Firing: a new level must hold as long as a new alert would have to.
  if (finding.level == alert.level) {
    track.proposed.reset();
    return std::nullopt;
  }
  if (track.proposed != finding.level) {
    track.proposed = finding.level;
    track.proposed_for = 0;
  }
  if (++track.proposed_for < policy_.pending_intervals) return std::nullopt;
  alert.level = finding.level;
  track.proposed.reset();
  return AlertTransition{AlertTransition::Kind::level_changed, alert};
}

std::optional<AlertTransition> AlertTracker::missed(Track& track, Timestamp now) {
  CacheAlert& alert = track.alert;
  alert.intervals = 0;
  track.proposed.reset();
  if (alert.state != AlertState::firing) return std::nullopt;  // a pending alert just lapses
  if (++track.quiet < policy_.keep_firing_intervals) return std::nullopt;
  alert.state = AlertState::resolved;
  alert.resolved = now;
  return AlertTransition{AlertTransition::Kind::resolved, alert};
}

std::vector<AlertTransition> AlertTracker::update(const std::vector<Finding>& findings,
                                                  Timestamp now,
                                                  std::chrono::system_clock::time_point wall_now) {
  std::map<Key, const Finding*> latest;
  for (const Finding& finding : findings) {
    auto [it, inserted] = latest.try_emplace(key_of(finding), &finding);
    if (!inserted && finding.level > it->second->level) it->second = &finding;
  }

  std::vector<AlertTransition> transitions;
  std::vector<CacheAlert> resolved;
  for (auto it = tracks_.begin(); it != tracks_.end();) {
    const auto found = latest.find(it->first);
    auto change =
        found != latest.end() ? seen(it->second, *found->second, now) : missed(it->second, now);
    if (change) transitions.push_back(*change);
    const AlertState state = it->second.alert.state;
    const bool lapsed = found == latest.end() && state == AlertState::pending;
    if (state == AlertState::resolved) resolved.push_back(it->second.alert);
    it = (lapsed || state == AlertState::resolved) ? tracks_.erase(it) : std::next(it);
    if (found != latest.end()) latest.erase(found);
  }
  for (const auto& [key, finding] : latest) {  // conditions seen for the first time
    Track track;
    track.alert = CacheAlert{.detector = finding->detector,
                             .metric = finding->metric,
                             .level = finding->level,
                             .shard = finding->shard,
                             .started = now,
                             .started_wall = wall_now};
    if (auto change = seen(track, *finding, now)) transitions.push_back(*change);
    tracks_.emplace(key, std::move(track));
  }

  current_.clear();
  for (const auto& [key, track] : tracks_) current_.push_back(track.alert);
  for (CacheAlert& alert : resolved) current_.push_back(std::move(alert));
  auto by_key = [](const CacheAlert& a, const CacheAlert& b) {
    const std::int64_t sa = a.shard ? std::int64_t{*a.shard} : -1;
    const std::int64_t sb = b.shard ? std::int64_t{*b.shard} : -1;
    return std::tie(a.detector, a.metric, sa) < std::tie(b.detector, b.metric, sb);
  };
  std::sort(current_.begin(), current_.end(), by_key);
  std::sort(
      transitions.begin(), transitions.end(),
      [&](const AlertTransition& a, const AlertTransition& b) { return by_key(a.alert, b.alert); });
  return transitions;
}

}  // namespace kvscope
