// One line of JSON, written field by field: the output format of dlbctl and dlb-demo.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dlbctl {

class JsonLine {
 public:
  JsonLine& Str(std::string_view name, std::string_view value);
  JsonLine& Bool(std::string_view name, bool value);
  JsonLine& Int(std::string_view name, int64_t value);
  JsonLine& Num(std::string_view name, double value);
  // Nanoseconds as seconds; dlb::kNever (a bucket that never leaks) as null.
  JsonLine& Seconds(std::string_view name, int64_t ns);
  JsonLine& Raw(std::string_view name, std::string_view json);
  // The object with its closing brace and a newline.
  std::string Finish() const { return out_ + "}\n"; }

 private:
  void Name(std::string_view name);
  std::string out_ = "{";
};

// `s` as a JSON string literal. Valid UTF-8 passes through; every other byte becomes
// \u00XX (its Latin-1 code point), so the output is always valid JSON.
std::string JsonQuote(std::string_view s);

}  // namespace dlbctl
