// config::Load: the file parsed once, then each section's reader over it.
#include "config/config.h"
#include "config/document.h"
#include "dlb/packet/config_yaml.h"
#include "limiter/options.h"

namespace dlb::config {
namespace {

StatusOr<File> ReadAll(const Document& doc) {
  File f;
  f.path = doc.file();
  auto library = ReadLibrarySections(doc);
  if (!library.ok()) return library.status();
  f.library = std::move(library).value();
  auto metrics = metrics::ReadMetricsConfig(doc);
  if (!metrics.ok()) return metrics.status();
  f.metrics = std::move(metrics).value();
  auto appliance = ReadApplianceSettings(doc);
  if (!appliance.ok()) return appliance.status();
  f.appliance = std::move(appliance).value();
  auto xdp = ReadXdpSettings(doc);
  if (!xdp.ok()) return xdp.status();
  f.xdp = *xdp;
  // Last: the packet reader takes every top-level key that is not a section, so an
  // unknown section is its "unknown key".
  auto packet = packet::ReadPacketConfig(doc);
  if (!packet.ok()) return packet.status();
  f.packet = std::move(packet).value();
  return f;
}

}  // namespace

StatusOr<File> Load(const std::string& path) {
  auto doc = Document::ReadFile(path);
  if (!doc.ok()) return doc.status();
  return ReadAll(*doc);
}

StatusOr<File> Parse(std::string_view yaml_text, std::string_view file_name) {
  auto doc = Document::Parse(yaml_text, file_name);
  if (!doc.ok()) return doc.status();
  return ReadAll(*doc);
}

}  // namespace dlb::config
