// `foresight guests`: the closed loop for libvirt guests (loop/guests.h): each running guest's live
// vCPUs and balloon sized from the forecast of what it uses.
#include <ctime>

#include "commands.h"
#include "foresight/allocate/libvirt.h"
#include "foresight/core/log.h"
#include "foresight/loop/guests.h"
#include "loop_options.h"

namespace foresight::app {
namespace {

struct Args : RoundsArgs {
  Args() : RoundsArgs("127.0.0.1:9466", 10) {}
  std::string connect = "qemu:///system";
  AdviceArgs advice;
};

Status guests(const Args& a) {
  auto planner = PlannerFile::open(a.planner, "guests");
  if (!planner) return tl::unexpected(planner.error());
  auto policies = planner->current();
  overrideQuantile(policies, a.quantile);
  auto c = roundsConfig(a, policies);  // workload sections keyed by domain name
  if (!c) return tl::unexpected(c.error());
  auto connection = std::make_shared<allocate::LibvirtConnection>(a.connect);
  // A wrong --connect is said here, at once.
  auto advice = capacityAdvice(a.advice, [&connection] { return connection->host(); }, nullptr, loop::raiseGuestMaximum);
  if (!advice) return tl::unexpected(advice.error());
  c->advice = std::move(*advice);
  c->backend_name = "libvirt";
  c->backend_options.values["uri"] = a.connect;  // what a rollback (`foresight history --rollback`) reaches
  auto audit = auditTrail(a.apply, a.audit);
  if (!audit) return tl::unexpected(audit.error());
  auto backend = allocate::makeLibvirtBackend(c->backend_options, connection);
  loop::Autoscaler autoscaler(std::move(*c), std::move(backend), std::move(*audit));
  loop::GuestSizer sizer([connection] { return connection->runningGuests(); }, autoscaler);
  sizer.leaveAlone([planner = &*planner](const std::string& guest) -> std::optional<std::string> {
    if (auto pattern = planner->current().leftAlone(guest))
      return fmt::format("it matches the planner policies' leave_alone '{}'", *pattern);
    return std::nullopt;
  });

  auto metrics = LoopEndpoint::serve(a, autoscaler, "guests", "running", "Running guests read, last round",
                                     "Guests that could not be read or planned for in a round (logged)", false);
  if (!metrics) return tl::unexpected(metrics.error());
  spdlog::info("guests: the running guests of {}, every {} s; {}", a.connect, a.period,
               a.apply ? "resizing them" : "dry-run (add --apply to resize)");

  RoundClock clock(a);
  for (std::size_t n = 0; !clock.over(); ++n) {
    reloadPlanner(*planner, a.quantile, autoscaler);
    auto r = sizer.round(static_cast<std::int64_t>(std::time(nullptr)));
    if (!r) {
      if (*metrics) (*metrics)->roundFailed();
      if (n == 0) return tl::unexpected(r.error());  // a wrong --connect is said at once
      spdlog::warn("guests: {}", r.error().message);
    } else {
      if (*metrics) (*metrics)->round(r->guests, r->errors);
      spdlog::debug("guests: round {}: {} guests, {} samples, {} plans, {} errors", n, r->guests, r->samples,
                    r->plans, r->errors);
      if (a.view)
        printView(autoscaler, fmt::format("({} running guests; the first plan waits for {} s of a guest's history, "
                                          "--min-history)",
                                          r->guests, a.min_history));
    }
    if (!clock.waitForNextRound()) break;
  }
  return ok();
}

}  // namespace

void addGuestsCommand(CLI::App& app) {
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "guests",
      "libvirt guest sizer: forecast each running guest's cpu (its vCPUs' cpu time) and memory (what its balloon "
      "driver reports in use) and set its live vCPUs and balloon within the maximums of its definition "
      "(dry-run unless --apply)");
  cmd->add_option("--connect,-c", a->connect, "libvirt connection URI (as virsh -c)")->capture_default_str();
  addRoundsOptions(*cmd, *a,
                   {"at least the guests' balloon statistics period", "guest",
                    "workload sections and leave_alone patterns by domain name",
                    "vCPUs and balloon in force", "the guests' new vCPUs and balloon sizes"});
  addAdviceOptions(*cmd, a->advice, "the host");
  cmd->callback([a] {
    if (auto st = guests(*a); !st) {
      spdlog::error("guests: {}", st.error().message);
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace foresight::app
