#include "cli/train_common.h"

#include <cstdio>

namespace dspark::cli {

void add_optimizer_flags(CLI::App* cmd, AdamWConfig& c) {
  cmd->add_option("--lr", c.lr, "Peak learning rate")->capture_default_str();
  cmd->add_option("--warmup", c.warmup_fraction, "Warm-up fraction of the steps")->capture_default_str();
  cmd->add_option("--clip", c.clip_norm, "Gradient-norm clip (0 disables)")->capture_default_str();
  cmd->add_option("--weight-decay", c.weight_decay, "AdamW weight decay")->capture_default_str();
}

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
