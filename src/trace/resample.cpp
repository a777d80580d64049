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
  std::map<std::string, double> metadata;
  for (const auto& [key, values] : raw.metadata) {
    if (double m = median(values); !std::isnan(m)) metadata[key] = m;
  }

  // Each sample's bucket, in time order; pieces are cut at gaps longer than max_fill_steps before
  // any array over buckets is made, so a piece's length is bounded by its samples and a stray
  // timestamp far from the rest makes a short piece rather than an array spanning the distance.
  std::vector<std::int64_t> bucket(order.size());
  for (std::size_t k = 0; k < order.size(); ++k) bucket[k] = (raw.time[order[k]] - t0) / step;
  std::vector<std::pair<std::size_t, std::size_t>> pieces;  // [first, last) over `order`
  std::size_t first = 0;
  for (std::size_t k = 1; k < order.size(); ++k) {
    if (bucket[k] - bucket[k - 1] - 1 > static_cast<std::int64_t>(options.max_fill_steps)) {
      pieces.emplace_back(first, k);
      first = k;
    }
  }
  pieces.emplace_back(first, order.size());

  const double min_steps = options.min_days * 86400.0 / static_cast<double>(step);
  for (std::size_t p = 0; p < pieces.size(); ++p) {
    const auto [k0, k1] = pieces[p];
    const std::int64_t b0 = bucket[k0];
    const auto n = static_cast<std::size_t>(bucket[k1 - 1] - b0 + 1);
    std::string id = pieces.size() == 1 ? raw.id : raw.id + "#" + std::to_string(p + 1);
    if (static_cast<double>(n) < min_steps) {
      skipped.push_back(
          Skip{raw.file, 0,
               fmt::format("{}: {:.2f} days of steps (needs {} days)", id,
                           static_cast<double>(static_cast<std::int64_t>(n) * step) / 86400.0,
                           options.min_days)});
      continue;
    }
    std::vector<bool> seen(n, false);
    std::array<std::vector<double>, kResourceCount> sum, count;
    for (Resource r : kAllResources) {
      if (raw.value[index(r)].empty()) continue;
      sum[index(r)].assign(n, 0.0);
      count[index(r)].assign(n, 0.0);
    }
    for (std::size_t k = k0; k < k1; ++k) {
      const auto b = static_cast<std::size_t>(bucket[k] - b0);
      seen[b] = true;
      for (Resource r : kAllResources) {
        const auto& v = raw.value[index(r)];
        if (v.empty() || std::isnan(v[order[k]])) continue;
        sum[index(r)][b] += v[order[k]];
        count[index(r)][b] += 1;
      }
    }
    Series s;
    s.id = id;
    s.start = t0 + b0 * step;
    s.step_seconds = step;
    s.metadata = metadata;
    for (Resource r : kAllResources) {
      // A column without a single value in this piece: the resource is absent, not all missing.
      const auto& c = count[index(r)];
      if (c.empty() || std::all_of(c.begin(), c.end(), [](double x) { return x == 0; })) continue;
      auto& u = s.usage[index(r)];
      u.resize(n);
      double carry = NAN;
      for (std::size_t b = 0; b < n; ++b) {
        if (seen[b]) {
          const double c = count[index(r)][b];
          u[b] = c > 0 ? sum[index(r)][b] / c : NAN;  // all samples missing: stays missing
          carry = u[b];
        } else {
          u[b] = carry;  // a short gap: carried forward
        }
      }
    }
    if (std::none_of(kAllResources.begin(), kAllResources.end(), [&](Resource r) { return s.has(r); })) {
      skipped.push_back(Skip{raw.file, 0, fmt::format("{}: no value in any column", id)});
      continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace foresight::trace
