// A program outside the tree: built by consumer_test.cc with nothing but
// `pkg-config --cflags --libs dlb`, against the uninstalled and the installed library.
// Exit 0 iff the library behaves as its header says.
#include <dlb/limiter.h>

#include <cstdio>
#include <stdexcept>

int main() {
  // The one-line API, on the Redis named by DLB_REDIS_URL: a bucket of 3 that leaks
  // one request per 1000 s admits 3 of 5.
  int allowed = 0;
  for (int i = 0; i < 5; ++i) allowed += dlb::AllowRequest("consumer", 3, 0.001) ? 1 : 0;
  const dlb::LimiterStats stats = dlb::DefaultLimiter().Stats();

  bool threw = false;
  try {
    dlb::AllowRequest("consumer", 0, 1.0);
  } catch (const std::invalid_argument&) {
    threw = true;
  }

  // A Limiter of its own, in local mode.
  auto limiter = dlb::Limiter::Create(dlb::LimiterOptions{.mode = dlb::Mode::kLocal});
  if (!limiter.ok()) {
    std::fprintf(stderr, "Limiter::Create: %s\n", limiter.status().ToString().c_str());
    return 1;
  }
  const dlb::BucketSpec spec{.capacity = 2, .leak_rate_per_s = 0.001};
  int local_allowed = 0;
  for (int i = 0; i < 3; ++i) {
    auto d = (*limiter)->Decide("someone", spec);
    if (!d.ok()) return 1;
    local_allowed += d->allowed ? 1 : 0;
  }

  std::printf("allow_request %d/5 store_decisions %llu invalid_argument %s local %d/3\n", allowed,
              static_cast<unsigned long long>(stats.store_decisions), threw ? "yes" : "no",
              local_allowed);
  return allowed == 3 && stats.store_decisions == 5 && threw && local_allowed == 2 ? 0 : 1;
}
