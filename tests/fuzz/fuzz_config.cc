// libFuzzer target: the YAML config loader and the rule compiler. Any input must give
// a config or an error that names the file; a loaded config must compile and start an
// engine.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "dlb/packet/config_yaml.h"
#include "dlb/packet/engine.h"

using namespace dlb::packet;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = LoadPacketConfigYaml(text, "fuzz.yaml");
  if (!config.ok()) {
    if (config.status().message().rfind("fuzz.yaml", 0) != 0) __builtin_trap();
    return 0;
  }
  auto rules = RuleSet::Compile(config->rules, config->default_rule);
  if (!rules.ok()) __builtin_trap();
  PacketConfig small = *config;  // keep the fuzzer's memory small
  small.max_flows = 8;
  small.reassembly_buffers = 2;
  small.shard_users = 8;
  auto engine = PacketEngine::Create(small, *rules, HeapAllocator::Instance(), dlb::SipKey{3, 4}, 1);
  if (!engine.ok()) __builtin_trap();
  return 0;
}
