// A strict reader for the one-line, flat JSON objects dlbctl prints (strings, numbers,
// booleans, null; no nesting). Tests use it to check that the output parses back.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace dlb::apptest {

struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string str;
};

using FlatJson = std::map<std::string, JsonValue>;

// nullopt (and `error` set) unless `text` is exactly one flat object and a newline.
std::optional<FlatJson> ParseFlatJsonLine(std::string_view text, std::string* error);

}  // namespace dlb::apptest
