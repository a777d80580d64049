// SVG plots of a backtest. Written by hand: Debian packages no C++ library that writes SVG
// charts, and a line chart with axes and a legend is a few dozen lines of markup.
#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "foresight/core/files.h"
#include "foresight/sim/report.h"

namespace foresight::sim {
namespace fs = std::filesystem;
namespace {

constexpr std::array<const char*, 8> kColors = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                                "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

class Chart {
 public:
  Chart(std::string title, std::string x_label, std::string y_label)
      : title_(std::move(title)), x_label_(std::move(x_label)), y_label_(std::move(y_label)) {}

  void line(std::string label, std::vector<double> x, std::vector<double> y, bool markers = false) {
    lines_.push_back({std::move(label), std::move(x), std::move(y), markers});
  }
  void band(std::vector<double> x, std::vector<double> lo, std::vector<double> hi) {
    bands_.push_back({std::move(x), std::move(lo), std::move(hi)});
  }

  std::string render() const {
    double x0 = INFINITY, x1 = -INFINITY, y0 = 0, y1 = -INFINITY;
    auto extend = [&](const std::vector<double>& xs, const std::vector<double>& ys) {
      for (std::size_t i = 0; i < xs.size(); ++i) {
        if (std::isnan(ys[i]) || std::isnan(xs[i])) continue;
        x0 = std::min(x0, xs[i]), x1 = std::max(x1, xs[i]), y1 = std::max(y1, ys[i]);
      }
    };
    for (const auto& l : lines_) extend(l.x, l.y);
    for (const auto& b : bands_) extend(b.x, b.hi);
    x0 = std::min(x0, 0.0);  // both charts start at zero: violation 0, hour 0
    if (!(x1 > x0)) x1 = x0 + 1;
    if (!(y1 > y0)) y1 = y0 + 1;
    y1 *= 1.05;
    const double W = 900, H = 480, L = 80, R = 200, T = 40, B = 50;
    auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
    auto py = [&](double y) {
      return H - B - (std::clamp(y, y0, y1) - y0) / (y1 - y0) * (H - T - B);
    };
    std::string s = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
        "font-family=\"sans-serif\" "
        "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        "<text x=\"{}\" y=\"22\" font-size=\"15\">{}</text>\n",
        W, H, L, title_);
    for (int i = 0; i <= 5; ++i) {
      const double yv = y0 + (y1 - y0) * i / 5, xv = x0 + (x1 - x0) * i / 5;
      s += fmt::format(
          "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>"
          "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.3g}</text>\n",
          L, py(yv), W - R, py(yv), L - 5, py(yv) + 4, yv);
      s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.3g}</text>\n", px(xv),
                       H - B + 16, xv);
    }
    s += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", L,
        T, W - L - R, H - T - B);
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (L + W - R) / 2,
                     H - 12, x_label_);
    s += fmt::format(
        "<text transform=\"translate(18,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
        (T + H - B) / 2, y_label_);
    for (const auto& b : bands_) {
      std::string pts;
      for (std::size_t i = 0; i < b.x.size(); ++i)
        if (!std::isnan(b.hi[i])) pts += fmt::format("{:.1f},{:.1f} ", px(b.x[i]), py(b.hi[i]));
      for (std::size_t i = b.x.size(); i-- > 0;)
        if (!std::isnan(b.lo[i])) pts += fmt::format("{:.1f},{:.1f} ", px(b.x[i]), py(b.lo[i]));
      s += fmt::format(
          "<polygon points=\"{}\" fill=\"#9ecae1\" fill-opacity=\"0.4\" stroke=\"none\"/>\n", pts);
    }
    for (std::size_t li = 0; li < lines_.size(); ++li) {
      const auto& l = lines_[li];
      const char* color = kColors[li % kColors.size()];
      std::string pts;
      for (std::size_t i = 0; i < l.x.size(); ++i) {
        if (std::isnan(l.y[i])) continue;
        pts += fmt::format("{:.1f},{:.1f} ", px(l.x[i]), py(l.y[i]));
        if (l.markers)
          s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>",
                           px(l.x[i]), py(l.y[i]), color);
      }
      s += fmt::format(
          "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.3\"/>\n", pts,
          color);
      s += fmt::format(
          "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"3\"/>"
          "<text x=\"{}\" y=\"{}\">{}</text>\n",
          W - R + 10, T + 10 + 18 * li, W - R + 30, T + 10 + 18 * li, color, W - R + 35,
          T + 14 + 18 * li, l.label);
    }
    return s + "</svg>\n";
  }

 private:
  struct Line {
    std::string label;
    std::vector<double> x, y;
    bool markers;
  };
  struct Band {
    std::vector<double> x, lo, hi;
  };
  std::string title_, x_label_, y_label_;
  std::vector<Line> lines_;
  std::vector<Band> bands_;
};

std::string unitOf(Resource r) {
  switch (r) {
    case Resource::kCpu:
      return "cores";
    case Resource::kMemory:
      return "bytes";
    default:
      return "bytes/s";
  }
}

}  // namespace

Result<std::vector<fs::path>> writePlots(const Report& report, const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(ErrorCode::kIo, "{}: cannot create folder: {}", dir.string(), ec.message());
  std::vector<fs::path> written;
  for (Resource r : kAllResources) {
    Chart chart(fmt::format("{}: slack vs violation rate along each policy's knob sweep", name(r)),
                "violation rate (share of steps with usage > allocation)", "slack (unused share)");
    bool any = false;
    for (const auto& p : report.policies) {
      auto it = p.resources.find(r);
      if (it == p.resources.end() || p.name == "oracle") continue;
      std::vector<double> x, y;
      for (const auto& s : it->second.frontier) x.push_back(s.violation_rate), y.push_back(s.slack);
      chart.line(p.name, std::move(x), std::move(y), true);
      any = true;
    }
    if (!any) continue;
    fs::path path = dir / fmt::format("frontier-{}.svg", name(r));
    if (auto s = writeFileAtomically(path, chart.render()); !s) return tl::unexpected(s.error());
    written.push_back(path);
  }
  for (const auto& ex : report.examples) {
    Chart chart(fmt::format("series {} — {} ({}), evaluation part", ex.id, name(ex.resource),
                            unitOf(ex.resource)),
                "hours since the start of the evaluation part", std::string(name(ex.resource)));
    std::vector<double> hours(ex.usage.size());
    for (std::size_t i = 0; i < hours.size(); ++i)
      hours[i] = static_cast<double>(i * ex.step_seconds) / 3600.0;
    for (const auto& [policy, lo] : ex.band_lo) chart.band(hours, lo, ex.band_hi.at(policy));
    chart.line("usage", hours, ex.usage);
    for (const auto& [policy, alloc] : ex.allocation) {
      if (policy != "oracle") chart.line(policy, hours, alloc);
    }
    std::string safe_id = ex.id;
    std::replace_if(
        safe_id.begin(), safe_id.end(),
        [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
    fs::path path = dir / fmt::format("example-{}-{}.svg", safe_id, name(ex.resource));
    if (auto s = writeFileAtomically(path, chart.render()); !s) return tl::unexpected(s.error());
    written.push_back(path);
  }
  return written;
}

}  // namespace foresight::sim
