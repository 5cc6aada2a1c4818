#include <mutex>
#include <stdexcept>

#include "dlb/limiter.h"

namespace dlb {

Limiter& DefaultLimiter() {
  // Built on first use; a bad environment or config file is a start-up error of the
  // calling program, reported once with the same message on every call.
  static std::once_flag once;
  static std::unique_ptr<Limiter> limiter;
  static std::string error;
  std::call_once(once, [] {
    auto opts = OptionsFromEnvironment();
    if (!opts.ok()) {
      error = "dlb: bad configuration: " + opts.status().message();
      return;
    }
    auto l = Limiter::Create(*opts);
    if (!l.ok()) {
      error = "dlb: bad configuration: " + l.status().message();
      return;
    }
    limiter = std::move(*l);
  });
  if (!limiter) throw std::runtime_error(error);
  return *limiter;
}

bool AllowRequest(std::string_view user_id, int capacity, double leak_rate) {
  auto d = DefaultLimiter().Decide(user_id, BucketSpec{.capacity = capacity, .leak_rate_per_s = leak_rate});
  if (!d.ok()) throw std::invalid_argument(d.status().message());
  return d->allowed;
}

}  // namespace dlb
