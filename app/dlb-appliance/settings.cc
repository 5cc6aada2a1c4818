#include "settings.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <limits>
#include <sstream>

namespace dlb::appliance {
namespace {

struct BadSetting {
  std::string message;
};

std::string Where(const std::string& file, const YAML::Node& n, const std::string& field) {
  const YAML::Mark m = n.Mark();
  std::ostringstream s;
  s << file;
  if (m.line >= 0) s << ":" << m.line + 1 << ":" << m.column + 1;
  s << ": appliance." << field << ": ";
  return s.str();
}

uint64_t ReadUint(const std::string& file, const YAML::Node& n, const std::string& field,
                  uint64_t min, uint64_t max) {
  uint64_t v = 0;
  bool ok = n.IsScalar();
  if (ok) {
    const std::string& s = n.Scalar();
    ok = !s.empty() && s.size() <= 19;
    for (char c : s) ok = ok && std::isdigit(static_cast<unsigned char>(c));
    if (ok) v = std::stoull(s);
  }
  if (!ok || v < min || v > max) {
    throw BadSetting{Where(file, n, field) + "must be an integer in [" + std::to_string(min) +
                     ", " + std::to_string(max) + "], got '" +
                     (n.IsScalar() ? n.Scalar() : std::string("(not a scalar)")) + "'"};
  }
  return v;
}

std::string ReadString(const std::string& file, const YAML::Node& n, const std::string& field) {
  if (!n.IsScalar()) throw BadSetting{Where(file, n, field) + "must be a string"};
  return n.Scalar();
}

}  // namespace

StatusOr<Settings> ParseSettings(const std::string& yaml_text, const std::string& file_name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(file_name + ":" + std::to_string(e.mark.line + 1) + ":" +
                                   std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!root.IsMap() || !root["appliance"]) {
    return Status::InvalidArgument(file_name + ": no 'appliance:' section (client_port and server_port are required)");
  }
  const YAML::Node a = root["appliance"];
  Settings s;
  try {
    if (!a.IsMap()) throw BadSetting{Where(file_name, a, "(section)") + "must be a map"};
    for (const auto& kv : a) {
      const std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (key == "client_port") {
        s.client_port = ReadString(file_name, v, key);
      } else if (key == "server_port") {
        s.server_port = ReadString(file_name, v, key);
      } else if (key == "workers") {
        s.workers = static_cast<uint32_t>(ReadUint(file_name, v, key, 0, 128));
      } else if (key == "rx_descriptors") {
        s.rx_descriptors = static_cast<uint16_t>(ReadUint(file_name, v, key, 64, 16384));
      } else if (key == "tx_descriptors") {
        s.tx_descriptors = static_cast<uint16_t>(ReadUint(file_name, v, key, 64, 16384));
      } else if (key == "mbufs") {
        s.mbufs = static_cast<uint32_t>(ReadUint(file_name, v, key, 0, 1u << 24));
      } else if (key == "idle_backoff_us") {
        s.idle_backoff_us = static_cast<uint32_t>(ReadUint(file_name, v, key, 0, 100'000));
      } else if (key == "sync_interval_ms") {
        s.sync_interval_ms = static_cast<uint32_t>(ReadUint(file_name, v, key, 1, 60'000));
      } else if (key == "sync_standing_ms") {
        s.sync_standing_ms = static_cast<uint32_t>(ReadUint(file_name, v, key, 0, 3'600'000));
      } else {
        throw BadSetting{Where(file_name, kv.first, key) + "unknown key"};
      }
    }
    if (s.client_port.empty()) throw BadSetting{Where(file_name, a, "client_port") + "is required"};
    if (s.server_port.empty()) throw BadSetting{Where(file_name, a, "server_port") + "is required"};
    if (s.client_port == s.server_port) {
      throw BadSetting{Where(file_name, a, "server_port") + "must differ from client_port"};
    }
  } catch (const BadSetting& e) {
    return Status::InvalidArgument(e.message);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(file_name + ": appliance: " + e.msg);
  }
  return s;
}

std::string WithoutApplianceSection(const std::string& yaml_text) {
  // The section is the top-level line `appliance:` and every following line that is
  // indented, blank or a comment (a block map, or a flow map continued on indented
  // lines). Blanking keeps the other sections' line numbers for their error messages.
  std::string out;
  out.reserve(yaml_text.size());
  bool in_section = false;
  size_t pos = 0;
  while (pos < yaml_text.size()) {
    size_t end = yaml_text.find('\n', pos);
    const bool last = end == std::string::npos;
    if (last) end = yaml_text.size();
    const std::string_view line(yaml_text.data() + pos, end - pos);
    if (line.substr(0, 10) == "appliance:") {
      in_section = true;
    } else if (in_section && !line.empty() && line[0] != ' ' && line[0] != '\t' && line[0] != '#' &&
               line[0] != '\r') {
      in_section = false;
    }
    if (!in_section) out.append(line);
    if (!last) out.push_back('\n');
    pos = end + 1;
  }
  return out;
}

}  // namespace dlb::appliance
