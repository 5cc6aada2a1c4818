#include "config/document.h"

#include <cmath>
#include <fstream>
#include <sstream>

namespace dlb::config {

void Reader::Fail(const YAML::Node& node, const std::string& field, const std::string& what) const {
  std::ostringstream os;
  os << file_;
  const YAML::Mark m = node.Mark();
  if (m.line >= 0) os << ':' << m.line + 1 << ':' << m.column + 1;
  os << ": " << field << ": " << what;
  throw FieldError{os.str()};
}

std::string Reader::Scalar(const YAML::Node& n, const std::string& field) const {
  if (!n.IsScalar()) Fail(n, field, "must be a scalar");
  return n.Scalar();
}

int64_t Reader::Int(const YAML::Node& n, const std::string& field, int64_t lo, int64_t hi) const {
  const std::string s = Scalar(n, field);
  size_t pos = 0;
  long long v = 0;
  bool ok = !s.empty();
  try {
    v = std::stoll(s, &pos, 10);
  } catch (...) {
    ok = false;
  }
  if (!ok || pos != s.size() || v < lo || v > hi) {
    Fail(n, field,
         "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + s + "'");
  }
  return v;
}

double Reader::Number(const YAML::Node& n, const std::string& field, double lo, double hi) const {
  const std::string s = Scalar(n, field);
  size_t pos = 0;
  double v = 0;
  bool ok = !s.empty();
  try {
    v = std::stod(s, &pos);
  } catch (...) {
    ok = false;
  }
  if (!ok || pos != s.size() || !std::isfinite(v) || v < lo || v > hi) {
    std::ostringstream os;
    os << "must be a number in [" << lo << ", " << hi << "], got '" << s << "'";
    Fail(n, field, os.str());
  }
  return v;
}

void Reader::Map(const YAML::Node& n, const std::string& field) const {
  if (!n.IsMap()) Fail(n, field, "must be a map");
}

void Reader::RefuseOtherIntervalUnit(const YAML::Node& key_node, const YAML::Node& value,
                                     const std::string& section, const std::string& key) const {
  constexpr std::string_view kPrefix = "sync_interval_";
  if (key.rfind(kPrefix, 0) != 0 || key == "sync_interval_us") return;
  const std::string unit = key.substr(kPrefix.size());
  std::string example = "sync_interval_us: 5000";
  if (value.IsScalar()) {
    try {
      size_t pos = 0;
      const double v = std::stod(value.Scalar(), &pos);
      const double per_unit = unit == "ms" ? 1e3 : unit == "s" ? 1e6 : unit == "ns" ? 1e-3 : 0;
      if (pos == value.Scalar().size() && per_unit > 0) {
        example = "sync_interval_us: " + std::to_string(std::llround(v * per_unit));
      }
    } catch (...) {
    }
  }
  Fail(key_node, section + "." + key,
       "sync intervals are in microseconds in every section: write " + example + " (docs/configuration.md)");
}

StatusOr<Document> Document::Parse(std::string_view yaml_text, std::string_view file_name) {
  Document d;
  d.file_ = std::string(file_name);
  try {
    d.root_ = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(d.YamlError(e));
  }
  if (!d.root_.IsNull() && !d.root_.IsMap()) {
    std::ostringstream os;
    os << d.file_;
    if (d.root_.Mark().line >= 0) os << ':' << d.root_.Mark().line + 1 << ':' << d.root_.Mark().column + 1;
    os << ": (top level): must be a map of sections and settings";
    return Status::InvalidArgument(os.str());
  }
  return d;
}

StatusOr<Document> Document::ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

YAML::Node Document::Section(const std::string& name) const {
  if (!root_.IsMap()) return YAML::Node();
  for (const auto& kv : root_) {
    if (kv.first.IsScalar() && kv.first.Scalar() == name) return kv.second;
  }
  return YAML::Node();
}

std::string Document::YamlError(const YAML::Exception& e) const {
  std::ostringstream os;
  os << file_;
  if (e.mark.line >= 0) os << ':' << e.mark.line + 1 << ':' << e.mark.column + 1;
  os << ": " << e.msg;
  return os.str();
}

}  // namespace dlb::config
