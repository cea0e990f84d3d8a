// PNG plots for `eval --plots`, drawn by gnuplot: each plot leaves NAME.png, the gnuplot
// script NAME.gp and its data NAME*.dat in the folder, so a plot can be restyled and redrawn
// by hand (`gnuplot NAME.gp`).
#pragma once

#include <string>
#include <vector>

#include "spec/calibration_metrics.h"

namespace dspark::cli {

// Error unless a `gnuplot` program can be run (searched on PATH).
void require_gnuplot();

// A reliability diagram: per draft position, mean survival against mean predicted survival
// in each non-empty bin, with the diagonal of perfect calibration; a second panel for the
// calibrated confidences when given. Returns the PNG's path.
std::string plot_reliability(const std::string& dir, const std::string& name, const std::string& title,
                             const std::vector<PositionCalibration>& raw,
                             const std::vector<PositionCalibration>* calibrated);

struct AcceptanceLine {
  std::string label;
  std::vector<double> accept_per_pos;  // conditional acceptance of draft positions 1..B
};

// Acceptance per draft position, one line per drafter. Returns the PNG's path.
std::string plot_acceptance(const std::string& dir, const std::string& name, const std::string& title,
                            const std::vector<AcceptanceLine>& lines);

struct ThroughputPoint {
  double per_user, aggregate;  // tokens/s
  int concurrency;
};
struct ThroughputLine {
  std::string label;
  std::vector<ThroughputPoint> points;
};

// Aggregate throughput against the speed each user sees, one line per scheduler through its
// concurrency levels (labelled), as in the DSpark paper's serving figures. `png` ends in
// .png; the script and data are written beside it. Returns the PNG's path.
std::string plot_throughput(const std::string& png, const std::string& title,
                            const std::vector<ThroughputLine>& lines);

// `text` reduced to letters, digits, '.', '-' and '_' (others become '_'), for file names.
std::string file_name_part(const std::string& text);

}  // namespace dspark::cli
