#include "cli/plots.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/mapped_file.h"

namespace dspark::cli {

namespace {

// A single-quoted shell word.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A single-quoted gnuplot string (a quote inside is doubled).
std::string gp_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  if (!f) fail(path, ": cannot write");
}

// Terminal set-up shared by the plots: cairo when this gnuplot has it, else libgd's png.
std::string terminal(const std::string& png, int width, int height) {
  const std::string size = " size " + std::to_string(width) + "," + std::to_string(height);
  return "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n  set terminal pngcairo noenhanced" + size +
         "\n} else {\n  set terminal png noenhanced" + size + "\n}\nset output " + gp_quote(png) + "\n";
}

// Runs gnuplot on the script; Error with gnuplot's first complaint when it fails or draws nothing.
void run_gnuplot(const std::string& script, const std::string& png) {
  const std::string log = script + ".log";
  std::filesystem::remove(png);
  const int rc = std::system(("gnuplot " + shell_quote(script) + " 2>" + shell_quote(log)).c_str());
  std::string message;
  if (std::filesystem::exists(log)) {
    std::istringstream in(read_text_file(log));
    for (std::string line; std::getline(in, line);)
      if (line.find_first_not_of(" \t^") != std::string::npos)
        message += (message.empty() ? "" : " | ") + line;
    std::filesystem::remove(log);
  }
  if (rc != 0) fail("gnuplot failed on ", script, message.empty() ? "" : ": ", message.substr(0, 300));
  if (!std::filesystem::exists(png) || std::filesystem::file_size(png) == 0)
    fail("gnuplot drew nothing into ", png, message.empty() ? "" : ": ", message.substr(0, 300));
}

// One block per draft position (separated by two blank lines: a gnuplot index) of the
// non-empty bins: mean prediction, mean label, count. Returns the positions written, by
// index, with -1 for ones that have no samples (no block written).
std::vector<int> write_reliability_data(const std::string& path, const std::vector<PositionCalibration>& ms) {
  std::ostringstream s;
  std::vector<int> index;
  int blocks = 0;
  for (const PositionCalibration& m : ms) {
    if (m.samples == 0) {
      index.push_back(-1);
      continue;
    }
    if (blocks) s << "\n\n";
    s << "# position " << index.size() + 1 << ": mean_prediction mean_label count\n";
    for (const ReliabilityBin& b : m.bins)
      if (b.count) s << b.mean_prediction << ' ' << b.mean_label << ' ' << b.count << '\n';
    index.push_back(blocks++);
  }
  write_text(path, s.str());
  return index;
}

std::string reliability_panel(const std::string& data, const std::vector<int>& index,
                              const std::string& title) {
  std::ostringstream s;
  s << "set title " << gp_quote(title) << "\n"
    << "plot x with lines dashtype 2 linecolor rgb 'gray40' title 'perfect'";
  for (size_t k = 0; k < index.size(); ++k)
    if (index[k] >= 0)
      s << ", \\\n  " << gp_quote(data) << " index " << index[k]
        << " using 1:2 with linespoints pointtype 7 pointsize 0.6 title 'position " << k + 1 << "'";
  s << "\n";
  return s.str();
}

}  // namespace

void require_gnuplot() {
  if (std::system("gnuplot --version >/dev/null 2>&1") != 0)
    fail(
        "--plots needs gnuplot, which could not be run (not found on PATH?); install it (Debian/Ubuntu: "
        "apt-get install gnuplot-nox) or leave out --plots");
}

std::string file_name_part(const std::string& text) {
  std::string out;
  for (char c : text)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') ? c : '_';
  return out.empty() ? "_" : out;
}

std::string plot_reliability(const std::string& dir, const std::string& name, const std::string& title,
                             const std::vector<PositionCalibration>& raw,
                             const std::vector<PositionCalibration>* calibrated) {
  const std::string base = dir + "/" + name, png = base + ".png", script = base + ".gp";
  const std::vector<int> raw_index = write_reliability_data(base + ".raw.dat", raw);
  std::ostringstream s;
  s << terminal(png, calibrated ? 1200 : 620, 560)
    << "set xrange [0:1]\nset yrange [0:1]\nset size ratio -1\nset key top left\nset grid\n"
    << "set xlabel 'predicted survival (product of confidences up to the position)'\n"
    << "set ylabel 'observed survival (all drafts up to the position accepted)'\n";
  if (calibrated) s << "set multiplot layout 1,2 title " << gp_quote(title) << "\n";
  s << reliability_panel(base + ".raw.dat", raw_index, calibrated ? "raw confidences" : title);
  if (calibrated) {
    const std::vector<int> cal_index = write_reliability_data(base + ".calibrated.dat", *calibrated);
    s << reliability_panel(base + ".calibrated.dat", cal_index, "calibrated (calibration.json)")
      << "unset multiplot\n";
  }
  write_text(script, s.str());
  run_gnuplot(script, png);
  return png;
}

std::string plot_acceptance(const std::string& dir, const std::string& name, const std::string& title,
                            const std::vector<AcceptanceLine>& lines) {
  const std::string base = dir + "/" + name, png = base + ".png", script = base + ".gp", data = base + ".dat";
  std::ostringstream d, s;
  size_t positions = 1;
  std::vector<int> index;
  int blocks = 0;
  for (const AcceptanceLine& l : lines) {
    if (l.accept_per_pos.empty()) {
      index.push_back(-1);
      continue;
    }
    if (blocks) d << "\n\n";
    d << "# " << l.label << ": position accept_rate\n";
    for (size_t k = 0; k < l.accept_per_pos.size(); ++k) d << k + 1 << ' ' << l.accept_per_pos[k] << '\n';
    positions = std::max(positions, l.accept_per_pos.size());
    index.push_back(blocks++);
  }
  write_text(data, d.str());
  s << terminal(png, 800, 520) << "set title " << gp_quote(title) << "\n"
    << "set xrange [0.5:" << positions + 0.5 << "]\nset yrange [0:1.05]\nset xtics 1\nset grid\n"
    << "set key outside bottom center horizontal\n"
    << "set xlabel 'draft position'\nset ylabel 'accepted, given the earlier drafts were'\n";
  if (blocks == 0) {
    s << "set label 1 'no drafts were verified' at graph 0.5, 0.5 center\nplot NaN notitle\n";
  } else {
    s << "plot ";
    bool first = true;
    for (size_t i = 0; i < lines.size(); ++i) {
      if (index[i] < 0) continue;
      s << (first ? "" : ", \\\n  ") << gp_quote(data) << " index " << index[i]
        << " using 1:2 with linespoints pointtype 7 title " << gp_quote(lines[i].label);
      first = false;
    }
    s << "\n";
  }
  write_text(script, s.str());
  run_gnuplot(script, png);
  return png;
}

std::string plot_throughput(const std::string& png, const std::string& title,
                            const std::vector<ThroughputLine>& lines) {
  const std::string base = png.size() > 4 && png.ends_with(".png") ? png.substr(0, png.size() - 4) : png;
  const std::string script = base + ".gp", data = base + ".dat";
  std::ostringstream d, s;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) d << "\n\n";
    d << "# " << lines[i].label << ": per_user_tokens_per_second aggregate_tokens_per_second concurrency\n";
    for (const ThroughputPoint& p : lines[i].points)
      d << p.per_user << ' ' << p.aggregate << ' ' << p.concurrency << '\n';
  }
  write_text(data, d.str());
  s << terminal(png, 900, 600) << "set title " << gp_quote(title) << "\n"
    << "set grid\nset key outside bottom center horizontal\n"
    << "set xlabel 'tokens/s per user (median)'\nset ylabel 'aggregate tokens/s'\nset yrange [0:*]\n"
    << "plot ";
  for (size_t i = 0; i < lines.size(); ++i) {
    s << (i ? ", \\\n  " : "") << gp_quote(data) << " index " << i
      << " using 1:2 with linespoints pointtype 7 title " << gp_quote(lines[i].label) << ", \\\n  "
      << gp_quote(data) << " index " << i
      << " using 1:2:(sprintf('%d', $3)) with labels offset 0.8,0.8 notitle";
  }
  s << "\n";
  write_text(script, s.str());
  run_gnuplot(script, png);
  return png;
}

}  // namespace dspark::cli
