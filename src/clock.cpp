#include "kvscope/clock.hpp"

namespace kvscope {

const SteadyClock& SteadyClock::instance() noexcept {
  static const SteadyClock clock;
  return clock;
}

}  // namespace kvscope
