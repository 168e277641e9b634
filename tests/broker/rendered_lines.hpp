// Helpers shared by the rendering tests: the meaningful lines of a rendered Mosquitto file.
#pragma once

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

namespace dag::broker::rendered {

/// The non-comment, non-empty lines of a rendered file, in order.
inline std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') out.push_back(line);
  }
  return out;
}

inline bool has(const std::vector<std::string>& lines, const std::string& line) {
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

}  // namespace dag::broker::rendered
