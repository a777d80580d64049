#include "foresight/loop/autoscaler.h"

#include <algorithm>
#include <cmath>

#include "foresight/core/log.h"

namespace foresight::loop {

Autoscaler::Autoscaler(AutoscalerConfig config, std::unique_ptr<allocate::Backend> backend,
                       std::optional<allocate::AuditLog> audit)
    : config_(std::move(config)),
      backend_(std::move(backend)),
      units_(backend_->units()),
      audit_(std::move(audit)),
      planner_(config_.planner) {
  setPlanners(config_.planner, config_.workload_planners);
}

void Autoscaler::setPlanners(const allocate::PlannerConfig& defaults,
                             const std::map<std::string, allocate::PlannerConfig>& workloads) {
  config_.planner = defaults;
  config_.workload_planners = workloads;
  planner_ = allocate::Planner(defaults);
  workload_planners_.clear();
  levels_ = allocate::plannerLevels(defaults, config_.resources);
  for (const auto& [name, c] : workloads) {
    workload_planners_.emplace(name, allocate::Planner(c));
    for (double l : allocate::plannerLevels(c, config_.resources)) levels_.push_back(l);
  }
  std::sort(levels_.begin(), levels_.end());
  levels_.erase(std::unique(levels_.begin(), levels_.end()), levels_.end());
}

namespace {
// A backend that throws (say, a cluster's answer of an unexpected shape) fails this workload's
// round like any other backend error, instead of ending the agent and every other workload's
// management with it. Out of memory still goes up to main.
template <typename F>
auto guarded(const std::string& backend, const std::string& workload, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    return fail(ErrorCode::kInternal, "{} {}: {}", backend, workload, e.what());
  }
}
}  // namespace

const allocate::Planner& Autoscaler::plannerOf(const std::string& workload) const {
  auto it = workload_planners_.find(workload);
  return it == workload_planners_.end() ? planner_ : it->second;
}

std::string widenCpuset(const std::string&, Resource, double wanted, double ceiling, std::optional<double> host) {
  return host ? fmt::format("widen its cpuset ({:.2f} cores forecast, {:g} CPUs in its cpuset, {:g} on this host)",
                            wanted, ceiling, *host)
              : fmt::format("widen its cpuset ({:.2f} cores forecast, {:g} CPUs in its cpuset)", wanted, ceiling);
}

std::int64_t clockStepFor(double sample_seconds) {
  return std::max<std::int64_t>(60, static_cast<std::int64_t>(std::ceil(10 * sample_seconds)));
}

std::int64_t Autoscaler::loopTime(std::int64_t wall) {
  std::int64_t step = last_wall_ ? std::max<std::int64_t>(0, wall - *last_wall_) : 0;
  if (config_.max_clock_step_seconds > 0) step = std::min(step, config_.max_clock_step_seconds);
  loop_now_ = last_wall_ ? loop_now_ + step : wall;
  last_wall_ = wall;
  return loop_now_;
}

std::int64_t Autoscaler::onLoopClock(std::int64_t wall) const {
  return last_wall_ ? loop_now_ - (*last_wall_ - wall) : wall;
}

Autoscaler::State& Autoscaler::stateOf(const std::string& workload) {
  State& st = workloads_[workload];
  if (!st.forecaster) {
    st.forecaster = config_.forecaster();
    if (auto it = past_ooms_.find(workload); it != past_ooms_.end()) {
      st.oom = it->second;
      past_ooms_.erase(it);
    }
    if (audit_) changesFromTheAuditTrail(workload, st);
  }
  return st;
}

// After a restart the planner's cool-downs run from the last changes the audit trail holds, not
// from none, and an OOM kill recorded with a change keeps its hold: a workload is not resized
// again at once, or back into the kill, because the agent or recommender restarted.
void Autoscaler::changesFromTheAuditTrail(const std::string& workload, State& st) {
  auto records = audit_->list(workload, 50);
  if (!records) {
    spdlog::warn("{}: its last changes could not be read from the audit trail; its cool-downs start afresh: {}",
                 workload, records.error().message);
    return;
  }
  for (const auto& rec : *records) {  // the newest first
    if (rec.oom && !st.oom) st.oom = allocate::OomKill{onLoopClock(rec.oom->time), rec.oom->demand};
    if (!rec.ok()) continue;
    for (Resource r : kAllResources)
      if (rec.after[r] && !st.last_change[index(r)]) st.last_change[index(r)] = onLoopClock(rec.time);
  }
}

std::size_t Autoscaler::warm(const std::string& workload, const trace::RawSeries& past) {
  if (past.time.empty() || workloads_.count(workload)) return 0;
  State& st = stateOf(workload);
  for (std::size_t i = 0; i < past.time.size(); ++i) {
    std::array<double, kResourceCount> u{NAN, NAN, NAN, NAN};
    for (std::size_t r = 0; r < kResourceCount; ++r)
      if (i < past.value[r].size()) u[r] = past.value[r][i];
    st.forecaster->observe(past.time[i], u);
    for (Resource r : config_.resources)
      if (std::isfinite(u[index(r)])) st.last_usage[index(r)] = u[index(r)];
  }
  st.samples = past.time.size();
  // On the loop's clock, the history began as long before the loop's last sample as it did on the
  // wall clock (before any observe(), the loop's clock will start at the wall clock's time).
  st.first_seen = last_wall_ ? loop_now_ - (*last_wall_ - past.time.front()) : past.time.front();
  return past.time.size();
}

Result<std::optional<allocate::Plan>> Autoscaler::observe(
    const std::string& workload, std::int64_t wall,
    const std::array<double, kResourceCount>& usage,
    const std::optional<std::array<double, kResourceCount>>& demand, const Bounds& bounds, bool left_alone,
    const std::optional<allocate::MemoryStall>& stall) {
  const std::int64_t now = loopTime(wall);
  State& st = stateOf(workload);
  st.forecaster->observe(wall, demand.value_or(usage));  // time of day: the wall clock's
  // Every measurement counts for the floors, also those before the first plan: a detail metric
  // (memory) is read only every few rounds, and an OOM kill is seen once.
  for (Resource r : config_.resources)
    if (std::isfinite(usage[index(r)])) st.last_usage[index(r)] = usage[index(r)];
  const std::size_t mem = index(Resource::kMemory);
  if (demand)
    if (auto kill = allocate::oomKillFromDemand(now, usage[mem], (*demand)[mem])) st.oom = kill;
  if (stall) {
    st.stall = stall;
    st.stall->since = onLoopClock(stall->since);  // compared with the last change, on the loop's clock
  }
  for (Resource r : kAllResources) {
    if (bounds.floor[r] && *bounds.floor[r] > 0) st.bounds.floor[r] = bounds.floor[r];
    if (bounds.ceiling[r] && *bounds.ceiling[r] > 0) st.bounds.ceiling[r] = bounds.ceiling[r];
  }
  if (st.samples++ == 0) st.first_seen = now;
  if (st.samples < config_.min_samples || now - st.first_seen < config_.min_history_seconds)
    return std::optional<allocate::Plan>();

  predict::Forecast f;
  f.workload = workload;
  f.time = wall;
  f.levels = levels_;
  for (Resource r : config_.resources)
    if (!st.forecaster->forecast(r, levels_, config_.lookahead, f.values[index(r)]))
      f.values[index(r)].clear();  // not enough history for this one
  auto current =
      guarded(config_.backend_name, workload, [&] { return backend_->current(workload); });
  if (!current) return tl::unexpected(current.error());
  if (config_.limits_found_start_cooldowns && !st.planned)
    for (Resource r : config_.resources)
      if ((*current)[r]) st.last_change[index(r)] = now;
  st.planned = true;
  allocate::PlanInput input;
  input.forecast = &f;
  input.current = *current;
  for (Resource r : config_.resources)
    if (std::isfinite(st.last_usage[index(r)])) input.usage[r] = st.last_usage[index(r)];
  input.oom = st.oom;
  input.stall = st.stall;
  input.floor = st.bounds.floor;
  input.ceiling = st.bounds.ceiling;
  input.units = units_;
  input.now = now;
  input.last_change = st.last_change;
  allocate::Plan plan = plannerOf(workload).plan(input);
  plan.workload = workload;
  const bool applies = config_.apply && !left_alone;
  {
    std::lock_guard lock(view_mutex_);
    for (const auto& d : plan.decisions) {
      auto& row = view_[{workload, d.resource}];
      row.workload = workload;
      row.resource = d.resource;
      // The last measurement, as the planner used it: a detail metric between its reads is not 0.
      row.usage = st.last_usage[index(d.resource)];
      row.forecast = d.forecast;
      row.current = d.current;
      row.target = d.target;
      row.rule = !d.change ? d.rule : left_alone ? d.rule + " (left alone)" : applies ? d.rule : d.rule + " (dry-run)";
    }
  }
  if (config_.advice) adviseIfItDoesNotFit(workload, plan, *current, now, st);
  if (!plan.hasChanges()) return std::optional<allocate::Plan>(std::move(plan));

  if (!applies) {
    // Nothing is applied, so the same change is planned every round: log it when it changes.
    std::string target = allocate::format(plan.target);
    if (target != st.last_dry_run)
      spdlog::log(left_alone ? spdlog::level::debug : spdlog::level::info, "{} {}: would set {} ({})",
                  left_alone ? "left alone" : "dry-run", workload, target, plan.reason());
    st.last_dry_run = std::move(target);
    return std::optional<allocate::Plan>(std::move(plan));
  }
  if (now < st.retry_at) {
    // Backing off a refused change: the plan stands, nothing is asked of the backend this round.
    const std::string held = fmt::format("apply failed {} times, next try in {} s",
                                         st.apply_failures, st.retry_at - now);
    std::lock_guard lock(view_mutex_);
    for (auto& d : plan.decisions) {
      if (!d.change) continue;
      d.change = false;
      d.target = d.current;
      d.rule = "apply-backoff";
      d.reason = held;
      view_[{workload, d.resource}].rule = "apply-backoff (" + held + ")";
    }
    plan.target = {};
    return std::optional<allocate::Plan>(std::move(plan));
  }
  Status applied = guarded(config_.backend_name, workload, [&]() -> Status {
    // The forecast's bounds go with the target (a VPA's lowerBound and upperBound).
    if (!audit_) return backend_->applyWithin(workload, plan.target, plan.lower, plan.upper);
    // The kill in force goes with the record (on the wall clock), so that a restart keeps its hold.
    std::optional<allocate::OomKill> oom = st.oom;
    if (oom && last_wall_) oom->time += *last_wall_ - loop_now_;
    return allocate::applyAndRecord(*backend_, config_.backend_name, config_.backend_options,
                                    *audit_, workload, plan.target, plan.reason(), &plan.lower,
                                    &plan.upper, oom)
        .map([](std::int64_t) {});
  });
  if (!applied) {
    const std::int64_t wait =
        std::min(config_.apply_retry_max_seconds,
                 config_.apply_retry_seconds << std::min(st.apply_failures, 30));
    ++st.apply_failures;
    st.retry_at = now + wait;
    {
      std::lock_guard lock(view_mutex_);
      for (const auto& d : plan.decisions)
        if (d.change) view_[{workload, d.resource}].rule = fmt::format("apply failed ({})", d.rule);
    }
    return fail(applied.error().code, "{} (refused {} times in a row, next try in {} s)",
                applied.error().message, st.apply_failures, wait);
  }
  st.apply_failures = 0;
  st.retry_at = 0;
  for (Resource r : kAllResources)
    if (plan.target[r]) st.last_change[index(r)] = now;
  spdlog::info("{}: set {} ({})", workload, allocate::format(plan.target), plan.reason());
  return std::optional<allocate::Plan>(std::move(plan));
}

void Autoscaler::adviseIfItDoesNotFit(const std::string& workload, const allocate::Plan& plan,
                                      const allocate::Allocation& current, std::int64_t now,
                                      State& st) {
  const CapacityAdvice& a = *config_.advice;
  allocate::CapacityRequest req;
  bool exceeds = false;
  double cpu_wanted = NAN, memory_wanted = NAN;
  for (const auto& d : plan.decisions) {
    if (d.resource != Resource::kCpu && d.resource != Resource::kMemory) continue;
    // What the workload is forecast to want, before a max bound (e.g. the host's own size) cut it.
    const double wanted = std::isnan(d.forecast) ? d.desired : std::max(d.desired, d.forecast);
    if (std::isnan(wanted)) continue;
    req.need[d.resource] = wanted;
    (d.resource == Resource::kCpu ? cpu_wanted : memory_wanted) = wanted;
    const auto& host = a.host[d.resource];
    exceeds = exceeds || (host && wanted > *host);
  }
  // Beyond its own ceiling but within the host: the capacity is here, so the advice is to raise
  // the ceiling (the planner stops the target at it), not to buy capacity.
  std::string raise;
  if (!exceeds && a.raise_ceiling) {
    for (const auto& [r, wanted] : {std::pair{Resource::kCpu, cpu_wanted}, std::pair{Resource::kMemory, memory_wanted}}) {
      const double ceiling = st.bounds.ceiling[r].value_or(0);
      if (ceiling > 0 && wanted > ceiling)
        raise += (raise.empty() ? "" : "; ") + a.raise_ceiling(workload, r, wanted, ceiling, a.host[r]);
    }
  }
  if (!exceeds && raise.empty()) {  // fits again: the advice no longer applies
    st.exceeding_since.reset();
    std::lock_guard lock(view_mutex_);
    for (auto& [key, row] : view_)
      if (key.first == workload) row.advice.clear();
    return;
  }
  if (!st.exceeding_since) st.exceeding_since = now;
  if (now - *st.exceeding_since < a.sustain_seconds) return;
  if (st.last_advice && now - *st.last_advice < a.every_seconds) return;
  st.last_advice = now;
  if (!raise.empty()) {
    spdlog::warn("{}: the forecast does not fit its own ceiling; {}", workload, raise);
    std::lock_guard lock(view_mutex_);
    for (auto& [key, row] : view_)
      if (key.first == workload) row.advice = raise;
    return;
  }
  req.workload = workload;
  for (Resource r : {Resource::kCpu, Resource::kMemory}) {
    req.current[r] = current[r] ? current[r] : a.host[r];
    req.spare[r] = 0.0;  // the forecast already exceeds the whole host
  }
  req.machine = a.machine;
  if (const auto* m = a.cost->catalog().find(a.machine))
    req.current_hourly = a.cost->catalog().hourly(*m, allocate::PurchaseOption::kOnDemand).value_or(0);
  req.hours = a.hours;
  const allocate::CapacityChoice choice = a.cost->choose(req);
  std::string chosen = "no feasible alternative in the catalog";
  if (choice.chosen) {
    const auto& alt = choice.alternatives[*choice.chosen];
    chosen = fmt::format("{}{}{} (${:.2f} over {} h)", alt.kind,
                         alt.machine.empty() ? "" : " " + alt.machine,
                         alt.option ? fmt::format(" {}", allocate::toString(*alt.option)) : "",
                         alt.expected_cost, a.hours);
  }
  spdlog::warn("{}: the forecast does not fit this host ({}); extra capacity from: {}\n{}",
               workload, allocate::format(req.need), chosen, choice.summary(5));
  std::lock_guard lock(view_mutex_);
  for (auto& [key, row] : view_)
    if (key.first == workload) row.advice = chosen;
}

std::int64_t Autoscaler::oomHoldSeconds() const {
  std::int64_t hold = planner_.config()[Resource::kMemory].oom_hold_seconds;
  for (const auto& [name, p] : workload_planners_)
    hold = std::max(hold, p.config()[Resource::kMemory].oom_hold_seconds);
  return hold;
}

void Autoscaler::rememberOomKill(const std::string& workload, std::int64_t wall, double demand) {
  if (last_wall_ && *last_wall_ - wall >= oomHoldSeconds()) return;
  State& st = stateOf(workload);
  const allocate::OomKill kill{onLoopClock(wall), demand};
  if (!st.oom || st.oom->time < kill.time) st.oom = kill;
}

void Autoscaler::forget(const std::string& workload) {
  const std::int64_t hold = oomHoldSeconds();
  std::erase_if(past_ooms_, [&](const auto& kv) { return loop_now_ - kv.second.time >= hold; });
  if (auto it = workloads_.find(workload); it != workloads_.end()) {
    if (it->second.oom && loop_now_ - it->second.oom->time < hold) past_ooms_[workload] = *it->second.oom;
    workloads_.erase(it);
  }
  std::lock_guard lock(view_mutex_);
  std::erase_if(view_, [&](const auto& kv) { return kv.first.first == workload; });
}

std::vector<Autoscaler::ViewRow> Autoscaler::view() const {
  std::lock_guard lock(view_mutex_);
  std::vector<ViewRow> rows;
  for (const auto& [key, row] : view_) rows.push_back(row);
  return rows;
}

}  // namespace foresight::loop
