#include "cli/train_progress.h"

#include <cstdio>

namespace dspark::cli {

std::string duration_text(double seconds) {
  const long s = long(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}

void print_progress_line(int step, int total, const std::string& text, double eta_seconds) {
  const int width = 24, filled = total > 0 ? width * step / total : width;
  std::string bar(size_t(filled), '#');
  bar.resize(size_t(width), '.');
  std::fprintf(stderr, "\rstep %d/%d [%s] %s ETA %s   ", step, total, bar.c_str(), text.c_str(),
               duration_text(eta_seconds).c_str());
  if (step == total) std::fprintf(stderr, "\n");
}

void print_json_line(const nlohmann::json& j) { std::fprintf(stderr, "%s\n", j.dump().c_str()); }

}  // namespace dspark::cli
