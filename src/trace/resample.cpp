#include <algorithm>
#include <cmath>
#include <numeric>

#include "foresight/trace/reader.h"

namespace foresight::trace {

std::int64_t medianStep(const RawSeries& raw) {
  if (raw.time.size() < 2) return 0;
  std::vector<std::int64_t> t = raw.time;
  std::sort(t.begin(), t.end());
  t.erase(std::unique(t.begin(), t.end()), t.end());
  if (t.size() < 2) return 0;
  std::vector<std::int64_t> d(t.size() - 1);
  for (std::size_t i = 1; i < t.size(); ++i) d[i - 1] = t[i] - t[i - 1];
  std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
  return d[d.size() / 2];
}

namespace {

double median(std::vector<double> v) {
  std::erase_if(v, [](double x) { return std::isnan(x); });
  if (v.empty()) return NAN;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace

std::vector<Series> resample(const RawSeries& raw, std::int64_t step, const ReadOptions& options,
                             std::vector<Skip>& skipped) {
  std::vector<Series> out;
  if (raw.time.empty()) {
    skipped.push_back(Skip{raw.file, 0, "no samples"});
    return out;
  }
  // Sort by time, keeping the first of duplicated timestamps.
  std::vector<std::size_t> order(raw.time.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return raw.time[a] < raw.time[b]; });
  order.erase(std::unique(order.begin(), order.end(),
                          [&](std::size_t a, std::size_t b) { return raw.time[a] == raw.time[b]; }),
              order.end());

  const std::int64_t t0 = raw.time[order.front()];
  const std::size_t buckets = static_cast<std::size_t>((raw.time[order.back()] - t0) / step) + 1;
  std::array<std::vector<double>, kResourceCount> sum, count;
  std::vector<bool> seen(buckets, false);
  for (Resource r : kAllResources) {
    if (raw.value[index(r)].empty()) continue;
    sum[index(r)].assign(buckets, 0.0);
    count[index(r)].assign(buckets, 0.0);
  }
  for (std::size_t i : order) {
    std::size_t b = static_cast<std::size_t>((raw.time[i] - t0) / step);
    seen[b] = true;
    for (Resource r : kAllResources) {
      const auto& v = raw.value[index(r)];
      if (v.empty() || std::isnan(v[i])) continue;
      sum[index(r)][b] += v[i];
      count[index(r)][b] += 1;
    }
  }
  std::map<std::string, double> metadata;
  for (const auto& [key, values] : raw.metadata) {
    if (double m = median(values); !std::isnan(m)) metadata[key] = m;
  }

  // Walk the buckets, filling short gaps and cutting at long ones.
  const double min_steps = options.min_days * 86400.0 / static_cast<double>(step);
  std::vector<std::pair<std::size_t, std::size_t>> pieces;  // [begin, end) over buckets
  std::size_t begin = 0, last_seen = 0;
  for (std::size_t b = 1; b < buckets; ++b) {
    if (!seen[b]) continue;
    if (b - last_seen - 1 > static_cast<std::size_t>(options.max_fill_steps)) {
      pieces.emplace_back(begin, last_seen + 1);
      begin = b;
    }
    last_seen = b;
  }
  pieces.emplace_back(begin, last_seen + 1);

  for (std::size_t p = 0; p < pieces.size(); ++p) {
    auto [b0, b1] = pieces[p];
    std::string id = pieces.size() == 1 ? raw.id : raw.id + "#" + std::to_string(p + 1);
    if (static_cast<double>(b1 - b0) < min_steps) {
      skipped.push_back(
          Skip{raw.file, 0,
               fmt::format("{}: {:.2f} days of steps (needs {} days)", id,
                           static_cast<double>((b1 - b0) * step) / 86400.0, options.min_days)});
      continue;
    }
    Series s;
    s.id = id;
    s.start = t0 + static_cast<std::int64_t>(b0) * step;
    s.step_seconds = step;
    s.metadata = metadata;
    for (Resource r : kAllResources) {
      if (sum[index(r)].empty()) continue;
      auto& u = s.usage[index(r)];
      u.resize(b1 - b0);
      double carry = NAN;
      for (std::size_t b = b0; b < b1; ++b) {
        double c = count[index(r)][b];
        if (seen[b]) {
          u[b - b0] = c > 0 ? sum[index(r)][b] / c : NAN;  // all samples missing: stays missing
          carry = u[b - b0];
        } else {
          u[b - b0] = carry;  // a short gap: carried forward
        }
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace foresight::trace
