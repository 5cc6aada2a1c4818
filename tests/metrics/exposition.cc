#include "exposition.h"

#include <cstdlib>
#include <sstream>

namespace dlb::testing {

Exposition ParseExposition(const std::string& text) {
  Exposition e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream l(line.substr(7));
      std::string name, type;
      l >> name >> type;
      e.type[name] = type;
      ++e.type_lines[name];
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) {
      const std::string rest = line.substr(7);
      const size_t sp = rest.find(' ');
      e.help[rest.substr(0, sp)] = sp == std::string::npos ? "" : rest.substr(sp + 1);
      continue;
    }
    if (line[0] == '#') continue;
    // series value [timestamp]; label values may contain spaces inside quotes.
    size_t end = line.find('{');
    size_t series_end;
    if (end != std::string::npos && end < line.find(' ')) {
      bool quoted = false;
      size_t i = end;
      for (; i < line.size(); ++i) {
        if (line[i] == '\\') { ++i; continue; }
        if (line[i] == '"') quoted = !quoted;
        if (line[i] == '}' && !quoted) break;
      }
      series_end = i + 1;
    } else {
      end = line.find(' ');
      series_end = end;
    }
    if (series_end == std::string::npos || series_end >= line.size() || line[series_end] != ' ') {
      e.errors.push_back(line);
      continue;
    }
    const std::string series = line.substr(0, series_end);
    const std::string value = line.substr(series_end + 1);
    char* parse_end = nullptr;
    const double v = std::strtod(value.c_str(), &parse_end);
    if (parse_end == value.c_str()) {
      e.errors.push_back(line);
      continue;
    }
    e.samples[series] = v;
    e.sample_names.push_back(series.substr(0, series.find('{')));
  }
  return e;
}

}  // namespace dlb::testing
