// Parses the Prometheus text exposition into what tests check: families with their
// TYPE and HELP, samples by series ("name{a=\"x\",b=\"y\"}" as rendered).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace dlb::testing {

struct Exposition {
  std::map<std::string, std::string> type;      // family -> counter, gauge, histogram
  std::map<std::string, std::string> help;      // family -> help text
  std::map<std::string, int> type_lines;        // family -> number of # TYPE lines
  std::map<std::string, double> samples;        // series -> value
  std::vector<std::string> sample_names;        // metric names of samples, in order
  std::vector<std::string> errors;              // lines that do not parse

  bool Has(const std::string& series) const { return samples.count(series) > 0; }
  double Value(const std::string& series) const {
    auto it = samples.find(series);
    return it == samples.end() ? -1 : it->second;
  }
};

Exposition ParseExposition(const std::string& text);

}  // namespace dlb::testing
