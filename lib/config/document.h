// The config file, parsed once, and the field reader every section's reader uses
// (docs/configuration.md). Errors name the file, the line and column, and the field:
//   "dlb.yaml:12:5: rules[1].leak_rate_per_s: must be a number in [0, 1e+09], got 'fast'".
// The library (libdlb) reads its `redis:` and `limiter:` sections through this alone;
// the programs load every section at once with config::Load (config/config.h).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "dlb/status.h"

namespace dlb::config {

// Sync intervals have one unit in every section (`sync_interval_us`) and one range.
inline constexpr int64_t kMinSyncIntervalUs = 100;
inline constexpr int64_t kMaxSyncIntervalUs = 10'000'000;

// Thrown by Reader at the first bad field and caught by Document::Read: start-up and
// reload only, never on a data path.
struct FieldError {
  std::string message;
};

class Reader {
 public:
  explicit Reader(std::string_view file) : file_(file) {}

  [[noreturn]] void Fail(const YAML::Node& node, const std::string& field, const std::string& what) const;

  std::string Scalar(const YAML::Node& n, const std::string& field) const;
  std::string String(const YAML::Node& n, const std::string& field) const { return Scalar(n, field); }
  int64_t Int(const YAML::Node& n, const std::string& field, int64_t lo, int64_t hi) const;
  double Number(const YAML::Node& n, const std::string& field, double lo, double hi) const;
  // A sync interval in microseconds, in [kMinSyncIntervalUs, kMaxSyncIntervalUs].
  int64_t SyncIntervalUs(const YAML::Node& n, const std::string& field) const {
    return Int(n, field, kMinSyncIntervalUs, kMaxSyncIntervalUs);
  }
  // Fails unless `n` is a map (a section or a rule).
  void Map(const YAML::Node& n, const std::string& field) const;

  template <typename E, size_t N>
  E Enum(const YAML::Node& n, const std::string& field, const std::pair<const char*, E> (&table)[N]) const {
    const std::string s = Scalar(n, field);
    std::string allowed;
    for (const auto& [name, value] : table) {
      if (s == name) return value;
      allowed += allowed.empty() ? "" : " | ";
      allowed += name;
    }
    Fail(n, field, "must be one of " + allowed + ", got '" + s + "'");
  }

  // Fails with the new spelling when `key` of `section` is a sync interval in another
  // unit than microseconds (`sync_interval_ms: 5` -> "write sync_interval_us: 5000").
  void RefuseOtherIntervalUnit(const YAML::Node& key_node, const YAML::Node& value,
                               const std::string& section, const std::string& key) const;

 private:
  std::string file_;
};

class Document {
 public:
  static StatusOr<Document> Parse(std::string_view yaml_text, std::string_view file_name);
  static StatusOr<Document> ReadFile(const std::string& path);

  const std::string& file() const { return file_; }
  const YAML::Node& root() const { return root_; }
  // The top-level section `name`; a null node when the file has none (or it is empty).
  YAML::Node Section(const std::string& name) const;

  // Runs `read(reader)`; a FieldError or a yaml-cpp error it throws becomes an
  // InvalidArgument naming the file.
  template <typename F>
  auto Read(F&& read) const -> StatusOr<decltype(read(std::declval<const Reader&>()))> {
    Reader reader(file_);
    try {
      return read(reader);
    } catch (const FieldError& e) {
      return Status::InvalidArgument(e.message);
    } catch (const YAML::Exception& e) {
      return Status::InvalidArgument(YamlError(e));
    }
  }

 private:
  std::string YamlError(const YAML::Exception& e) const;

  std::string file_;
  YAML::Node root_;
};

}  // namespace dlb::config
