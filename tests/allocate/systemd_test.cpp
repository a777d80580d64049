// systemd backend against a stand-in for systemd's D-Bus API. No systemd runs as PID 1 here, so
// the peer is a fake org.freedesktop.systemd1 that answers the documented calls the backend makes
// (Manager.GetUnit, Manager.SetUnitProperties with the unit's cgroup properties, and
// Properties.Get on the unit's type interface, as org.freedesktop.systemd1(5) and
// systemd.resource-control(5) give them), reached both ways the backend connects: through a real
// dbus-daemon (Debian's, started by the test) and directly on a private socket, as systemd's
// /run/systemd/private is.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "foresight/allocate/audit.h"
#include "foresight/allocate/backend.h"
#include "support/server_process.h"
#include "support/shell.h"
#include "systemd_units.h"
#include "test_util.h"

namespace foresight::allocate {
namespace {

namespace fs = std::filesystem;
constexpr std::uint64_t kInf = std::numeric_limits<std::uint64_t>::max();
constexpr double kMiB = 1024.0 * 1024;
constexpr const char* kUnitPrefix = "/org/freedesktop/systemd1/unit";

// What the fake systemd holds per unit, and what it was asked.
struct FakeUnit {
  std::string interface;  // org.freedesktop.systemd1.Service, ...
  std::uint64_t cpu = kInf, memory_max = kInf, memory_current = kInf, memory_high = kInf;
  std::map<std::string, std::uint64_t> io_read{}, io_write{};  // IO*BandwidthMax entries by device path
};

class FakeSystemd {
 public:
  std::mutex mu;
  std::map<std::string, FakeUnit> units;
  int set_calls = 0, get_unit_calls = 0;
  bool last_runtime = false;
  // How long GetUnit takes to answer, as a hung PID 1 would (its connection waits meanwhile).
  std::chrono::milliseconds get_unit_delay{0};
  // systemd checks all properties before it sets any; this makes the fake's next call set the
  // first and then fail, to see the backend put it back.
  bool fail_after_first = false;

  ~FakeSystemd() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();  // no connection is added after it
    for (auto& t : threads_) t.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  bool lastRuntime() {
    std::lock_guard lock(mu);
    return last_runtime;
  }

  // Owns org.freedesktop.systemd1 on the bus at `address`.
  void serveOnBus(const std::string& address) {
    sd_bus* b = nullptr;
    ASSERT_GE(sd_bus_new(&b), 0);
    ASSERT_GE(sd_bus_set_address(b, address.c_str()), 0);
    ASSERT_GE(sd_bus_set_bus_client(b, 1), 0);
    ASSERT_GE(sd_bus_start(b), 0);
    addObjects(b);
    ASSERT_GE(sd_bus_request_name(b, "org.freedesktop.systemd1", 0), 0);
    std::lock_guard lock(mu);
    threads_.emplace_back([this, b] { loop(b); });
  }

  // Accepts direct connections on a Unix socket, as systemd's private socket does.
  void servePrivate(const fs::path& socket) {
    fs::create_directories(socket.parent_path());
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", socket.c_str());
    ASSERT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::listen(listen_fd_, 4), 0);
    acceptor_ = std::thread([this] {
      while (!stop_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        sd_bus* b = nullptr;
        sd_id128_t id;
        sd_id128_randomize(&id);
        if (sd_bus_new(&b) < 0 || sd_bus_set_fd(b, fd, fd) < 0 || sd_bus_set_server(b, 1, id) < 0) {
          ::close(fd);
          continue;
        }
        addObjects(b);
        if (sd_bus_start(b) < 0) {
          sd_bus_unref(b);
          continue;
        }
        std::lock_guard lock(mu);
        threads_.emplace_back([this, b] { loop(b); });
      }
    });
  }

 private:
  void loop(sd_bus* b) {
    while (!stop_) {
      const int r = sd_bus_process(b, nullptr);
      if (r < 0) break;  // the client went away
      if (r == 0) sd_bus_wait(b, 100000);
    }
    sd_bus_flush_close_unref(b);
  }

  void addObjects(sd_bus* b) {
    sd_bus_add_object_vtable(b, nullptr, "/org/freedesktop/systemd1",
                             "org.freedesktop.systemd1.Manager", kManagerVtable, this);
    for (const char* type : {"Service", "Scope", "Slice"})
      sd_bus_add_fallback_vtable(b, nullptr, kUnitPrefix,
                                 (std::string("org.freedesktop.systemd1.") + type).c_str(),
                                 kUnitVtable, findUnit, this);
  }

  static int getIoProperty(sd_bus*, const char* path, const char*, const char* property,
                           sd_bus_message* reply, void* userdata, sd_bus_error*) {
    auto* self = static_cast<FakeSystemd*>(userdata);
    std::lock_guard lock(self->mu);
    const FakeUnit& u = self->units.at(unitOfPath(path));
    const auto& entries = std::string(property) == "IOReadBandwidthMax" ? u.io_read : u.io_write;
    int r = sd_bus_message_open_container(reply, 'a', "(st)");
    for (const auto& [device, v] : entries)
      if (r >= 0) r = sd_bus_message_append(reply, "(st)", device.c_str(), v);
    return r >= 0 ? sd_bus_message_close_container(reply) : r;
  }

  static std::string unitOfPath(const char* path) {
    char* name = nullptr;
    if (sd_bus_path_decode(path, kUnitPrefix, &name) <= 0) return "";
    std::string s(name);
    free(name);
    return s;
  }

  static int findUnit(sd_bus*, const char* path, const char* interface, void* userdata,
                      void** found, sd_bus_error*) {
    auto* self = static_cast<FakeSystemd*>(userdata);
    std::lock_guard lock(self->mu);
    auto it = self->units.find(unitOfPath(path));
    if (it == self->units.end() || it->second.interface != interface) return 0;
    *found = self;
    return 1;
  }

  static int getProperty(sd_bus*, const char* path, const char*, const char* property,
                         sd_bus_message* reply, void* userdata, sd_bus_error*) {
    auto* self = static_cast<FakeSystemd*>(userdata);
    std::lock_guard lock(self->mu);
    const FakeUnit& u = self->units.at(unitOfPath(path));
    const std::string p = property;
    return sd_bus_message_append(reply, "t", p == "CPUQuotaPerSecUSec" ? u.cpu
                                             : p == "MemoryMax"        ? u.memory_max
                                             : p == "MemoryHigh"       ? u.memory_high
                                                                       : u.memory_current);
  }

  static int getUnit(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    auto* self = static_cast<FakeSystemd*>(userdata);
    const char* name = nullptr;
    if (int r = sd_bus_message_read(m, "s", &name); r < 0) return r;
    std::chrono::milliseconds delay;
    {
      std::lock_guard lock(self->mu);
      ++self->get_unit_calls;
      delay = self->get_unit_delay;
    }
    std::this_thread::sleep_for(delay);
    {
      std::lock_guard lock(self->mu);
      if (!self->units.count(name))
        return sd_bus_error_setf(error, "org.freedesktop.systemd1.NoSuchUnit", "Unit %s not loaded.", name);
    }
    char* path = nullptr;
    sd_bus_path_encode(kUnitPrefix, name, &path);
    const int r = sd_bus_reply_method_return(m, "o", path);
    free(path);
    return r;
  }

  static int setUnitProperties(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    auto* self = static_cast<FakeSystemd*>(userdata);
    const char* name = nullptr;
    int runtime = 0;
    if (int r = sd_bus_message_read(m, "sb", &name, &runtime); r < 0) return r;
    std::lock_guard lock(self->mu);
    auto it = self->units.find(name);
    if (it == self->units.end())
      return sd_bus_error_setf(error, "org.freedesktop.systemd1.NoSuchUnit", "Unit %s not found.", name);
    FakeUnit staged = it->second;
    int set = 0;
    if (int r = sd_bus_message_enter_container(m, 'a', "(sv)"); r < 0) return r;
    while (sd_bus_message_enter_container(m, 'r', "sv") > 0) {
      const char* key = nullptr;
      std::uint64_t v = 0;
      if (int r = sd_bus_message_read(m, "s", &key); r < 0) return r;
      const std::string k = key;
      if (k == "IOReadBandwidthMax" || k == "IOWriteBandwidthMax") {
        // As systemd: each (path, bytes) replaces that path's entry or adds one.
        auto& entries = k == "IOReadBandwidthMax" ? staged.io_read : staged.io_write;
        if (int r = sd_bus_message_enter_container(m, 'v', "a(st)"); r < 0) return r;
        if (int r = sd_bus_message_enter_container(m, 'a', "(st)"); r < 0) return r;
        const char* device = nullptr;
        std::uint64_t bytes = 0;
        while (sd_bus_message_read(m, "(st)", &device, &bytes) > 0) entries[device] = bytes;
        sd_bus_message_exit_container(m);
        sd_bus_message_exit_container(m);
        sd_bus_message_exit_container(m);
        continue;
      }
      if (k != "CPUQuotaPerSecUSec" && k != "MemoryMax" && k != "MemoryHigh")
        return sd_bus_error_setf(error, SD_BUS_ERROR_PROPERTY_READ_ONLY,
                                 "Cannot set property %s, or unknown property.", key);
      if (int r = sd_bus_message_read(m, "v", "t", &v); r < 0) return r;
      if (v == 0) return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "%s= value out of range", key);
      (k == "MemoryMax" ? staged.memory_max : k == "MemoryHigh" ? staged.memory_high : staged.cpu) = v;
      sd_bus_message_exit_container(m);
      if (self->fail_after_first && ++set == 1) {
        self->fail_after_first = false;
        it->second = staged;
        return sd_bus_error_setf(error, SD_BUS_ERROR_IO_ERROR, "Failed to write drop-in.");
      }
    }
    sd_bus_message_exit_container(m);
    it->second = staged;
    ++self->set_calls;
    self->last_runtime = runtime != 0;
    return sd_bus_reply_method_return(m, "");
  }

  static inline const sd_bus_vtable kManagerVtable[] = {
      SD_BUS_VTABLE_START(0),
      SD_BUS_METHOD("GetUnit", "s", "o", getUnit, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_METHOD("SetUnitProperties", "sba(sv)", "", setUnitProperties, SD_BUS_VTABLE_UNPRIVILEGED),
      SD_BUS_VTABLE_END};
  static inline const sd_bus_vtable kUnitVtable[] = {
      SD_BUS_VTABLE_START(0),
      SD_BUS_PROPERTY("CPUQuotaPerSecUSec", "t", getProperty, 0, 0),
      SD_BUS_PROPERTY("MemoryMax", "t", getProperty, 0, 0),
      SD_BUS_PROPERTY("MemoryHigh", "t", getProperty, 0, 0),
      SD_BUS_PROPERTY("IOReadBandwidthMax", "a(st)", getIoProperty, 0, 0),
      SD_BUS_PROPERTY("IOWriteBandwidthMax", "a(st)", getIoProperty, 0, 0),
      SD_BUS_PROPERTY("MemoryCurrent", "t", getProperty, 0, 0),
      SD_BUS_VTABLE_END};

  std::atomic<bool> stop_{false};
  int listen_fd_ = -1;
  std::thread acceptor_;
  std::vector<std::thread> threads_;  // one per connection, added under mu
};

// Debian's dbus-daemon on a socket of its own, for the duration of a test.
class DbusDaemon {
 public:
  explicit DbusDaemon(const fs::path& dir) : socket_(dir / "bus") {
    const fs::path conf = dir / "bus.conf";
    testing::writeFile(conf, "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                             " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                             "<busconfig><type>custom</type><listen>unix:path=" + socket_.string() +
                             "</listen><auth>EXTERNAL</auth><policy context=\"default\">"
                             "<allow send_destination=\"*\"/><allow own=\"*\"/><allow receive_sender=\"*\"/>"
                             "</policy></busconfig>\n");
    // Its complaints (e.g. about fd limits) go to the log.
    process_.emplace(std::vector<std::string>{"dbus-daemon", "--config-file=" + conf.string(), "--nofork", "--nopidfile"},
                     dir / "dbus-daemon.log");
    // Until it accepts: the socket file exists from bind(), a moment before listen(), and a
    // connection then is refused (seen under load in CI: ECONNREFUSED).
    for (int i = 0; i < 250 && !running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ~DbusDaemon() {
    process_.reset();  // stopped before its socket goes
    std::error_code ec;
    fs::remove(socket_, ec);
  }
  // Whether a connection to its socket is accepted.
  bool running() const {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, socket_.c_str(), sizeof sa.sun_path - 1);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(fd);
    return ok;
  }
  std::string address() const { return "unix:path=" + socket_.string(); }

 private:
  fs::path socket_;
  std::optional<test_support::ServerProcess> process_;
};

class SystemdBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<DbusDaemon>(tmp_.path());
    ASSERT_TRUE(daemon_->running()) << "dbus-daemon did not start (Debian package dbus-daemon; "
                                       "scripts/deps.sh test installs it): "
                                    << testing::readFile(tmp_.path() / "dbus-daemon.log");
    {
      std::lock_guard lock(fake_.mu);
      fake_.units["web.service"] = {"org.freedesktop.systemd1.Service", kInf, kInf, 300 * 1024 * 1024};
      fake_.units["session-3.scope"] = {"org.freedesktop.systemd1.Scope", 2000000, 1 << 30, kInf};
    }
    fake_.serveOnBus(daemon_->address());
    options_.values["bus"] = daemon_->address();
  }
  FakeUnit unit(const std::string& name) {
    std::lock_guard lock(fake_.mu);
    return fake_.units.at(name);
  }
  int setCalls() {
    std::lock_guard lock(fake_.mu);
    return fake_.set_calls;
  }

  testing::TempDir tmp_;
  std::unique_ptr<DbusDaemon> daemon_;
  FakeSystemd fake_;  // after the daemon: stopped before it
  BackendOptions options_;
};

Allocation diskIo(double bytes_per_second) {
  Allocation a;
  a[Resource::kDiskIo] = bytes_per_second;
  return a;
}

Allocation cpuMemory(std::optional<double> cpu, std::optional<double> memory) {
  Allocation a;
  a[Resource::kCpu] = cpu;
  a[Resource::kMemory] = memory;
  return a;
}

TEST_F(SystemdBackendTest, SetsAUnitsLimitsThroughSystemdAndReadsThemBack) {
  auto b = makeSystemdBackend(options_);
  auto cur = b->current("system.slice/web.service");  // as `foresight run` names the cgroup
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_FALSE((*cur)[Resource::kCpu]);  // infinity: no limit
  EXPECT_FALSE((*cur)[Resource::kMemory]);

  ASSERT_TRUE(b->apply("system.slice/web.service", cpuMemory(1.5, 512 * kMiB + 1)));
  const FakeUnit u = unit("web.service");
  EXPECT_EQ(u.cpu, 1500000u);
  EXPECT_EQ(u.memory_max, 512 * 1024 * 1024 + 4096u);  // up to a whole page, as the cgroup backends
  EXPECT_EQ(u.memory_high, u.memory_max);  // memory_high_ratio 1, as cgroup-v2's memory.high
  EXPECT_TRUE(fake_.lastRuntime());  // a runtime change: systemd keeps it until reboot
  cur = b->current("web.service");
  ASSERT_TRUE(cur);
  EXPECT_DOUBLE_EQ(*(*cur)[Resource::kCpu], 1.5);
  EXPECT_DOUBLE_EQ(*(*cur)[Resource::kMemory], 512 * kMiB + 4096);

  // Idempotent: the same target, or one that rounds to it, sends nothing.
  const int calls = setCalls();
  ASSERT_TRUE(b->apply("web.service", cpuMemory(1.5, 512 * kMiB + 1)));
  ASSERT_TRUE(b->apply("web.service", cpuMemory(1.49999, std::nullopt)));
  EXPECT_EQ(setCalls(), calls);

  // Quotas go up to whole percent, as systemd 252's drop-in keeps them, at least 1%; max removes
  // the limit.
  ASSERT_TRUE(b->apply("web.service", cpuMemory(1.23451, INFINITY)));
  EXPECT_EQ(unit("web.service").cpu, 1240000u);
  EXPECT_EQ(unit("web.service").memory_max, kInf);
  EXPECT_EQ(unit("web.service").memory_high, kInf);
  ASSERT_TRUE(b->apply("web.service", cpuMemory(0.001, std::nullopt)));
  EXPECT_EQ(unit("web.service").cpu, 10000u);

  auto use = b->usage("web.service");
  ASSERT_TRUE(use);
  EXPECT_DOUBLE_EQ(*(*use)[Resource::kMemory], 300 * kMiB);
  use = b->usage("session-3.scope");  // MemoryCurrent infinity: accounting off, nothing known
  ASSERT_TRUE(use) << use.error().message;
  EXPECT_FALSE((*use)[Resource::kMemory]);
}

TEST_F(SystemdBackendTest, ReachesSystemdOnItsPrivateSocketWithoutABus) {
  fake_.servePrivate(tmp_.path() / "host/run/systemd/private");
  BackendOptions o;
  o.values["bus"] = "private";
  o.values["root"] = (tmp_.path() / "host").string();
  auto b = makeSystemdBackend(o);
  auto cur = b->current("user.slice/user-1000.slice/session-3.scope");
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_DOUBLE_EQ(*(*cur)[Resource::kCpu], 2.0);
  EXPECT_DOUBLE_EQ(*(*cur)[Resource::kMemory], 1024 * kMiB);
  ASSERT_TRUE(b->apply("session-3.scope", cpuMemory(0.5, std::nullopt)));
  EXPECT_EQ(unit("session-3.scope").cpu, 500000u);
  EXPECT_EQ(unit("session-3.scope").memory_max, 1u << 30);  // left alone
}

TEST_F(SystemdBackendTest, RefusalsNameTheUnitAndLeaveNothingHalfApplied) {
  auto b = makeSystemdBackend(options_);
  // Not a unit: refused before the bus is asked, and `foresight run` leaves it alone.
  EXPECT_TRUE(b->manages("system.slice/web.service"));
  EXPECT_FALSE(b->manages("kubepods.slice/pod1234/ctr"));
  EXPECT_FALSE(b->manages("system.slice/.service"));
  auto cur = b->current("kubepods.slice/pod1234/ctr");
  ASSERT_FALSE(cur);
  EXPECT_EQ(cur.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(cur.error().message.find("'kubepods.slice/pod1234/ctr'"), std::string::npos) << cur.error().message;
  // An unknown unit: systemd's error, with the unit.
  cur = b->current("gone.service");
  ASSERT_FALSE(cur);
  EXPECT_EQ(cur.error().code, ErrorCode::kNotFound);
  EXPECT_NE(cur.error().message.find("gone.service"), std::string::npos) << cur.error().message;
  EXPECT_NE(cur.error().message.find("org.freedesktop.systemd1.NoSuchUnit"), std::string::npos);
  Allocation io;
  io[Resource::kDiskIo] = 1e6;
  EXPECT_FALSE(b->apply("web.service", io));
  EXPECT_FALSE(b->apply("web.service", cpuMemory(-1, std::nullopt)));

  // A call that fails after systemd set part of it: the part is set back.
  ASSERT_TRUE(b->apply("web.service", cpuMemory(1, 256 * kMiB)));
  {
    std::lock_guard lock(fake_.mu);
    fake_.fail_after_first = true;
  }
  auto st = b->apply("web.service", cpuMemory(2, 128 * kMiB));
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("web.service"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("(restored)"), std::string::npos) << st.error().message;
  EXPECT_EQ(unit("web.service").cpu, 1000000u);
  EXPECT_EQ(unit("web.service").memory_max, 256 * 1024 * 1024u);
}

// A connection closed under the backend (the bus restarted; `systemctl daemon-reexec` closes the
// private socket's connections alike) is opened again at the next call, not failed for good.
TEST_F(SystemdBackendTest, ConnectsAgainAfterTheBusRestarted) {
  auto b = makeSystemdBackend(options_);
  ASSERT_TRUE(b->current("web.service"));
  daemon_.reset();
  daemon_ = std::make_unique<DbusDaemon>(tmp_.path());
  ASSERT_TRUE(daemon_->running());
  fake_.serveOnBus(daemon_->address());
  auto cur = b->current("session-3.scope");
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_DOUBLE_EQ(*(*cur)[Resource::kCpu], 2.0);
  ASSERT_TRUE(b->apply("web.service", cpuMemory(0.5, std::nullopt)));
  EXPECT_EQ(unit("web.service").cpu, 500000u);
}

TEST_F(SystemdBackendTest, NoBusIsReportedWithItsAddress) {
  BackendOptions o;
  o.values["bus"] = "unix:path=" + (tmp_.path() / "nobody-listens").string();
  auto cur = makeSystemdBackend(o)->current("web.service");
  ASSERT_FALSE(cur);
  EXPECT_EQ(cur.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(cur.error().message.find("nobody-listens"), std::string::npos) << cur.error().message;
}

// A PID 1 that does not answer costs one timeout, not one per unit per round: the backend stops
// asking for six timeouts, failing at once, then asks again.
TEST_F(SystemdBackendTest, AHungSystemdIsNotAskedAgainForAWhile) {
  options_.values["timeout"] = "0.2";
  options_.values["max_age"] = "0";  // every current() asks
  auto b = makeSystemdBackend(options_);
  ASSERT_TRUE(b->current("web.service"));
  {
    std::lock_guard lock(fake_.mu);
    fake_.get_unit_delay = std::chrono::milliseconds(1500);
  }
  auto hung = b->current("web.service");
  ASSERT_FALSE(hung);
  EXPECT_EQ(hung.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(hung.error().message.find("did not answer within 0.2 s; not asked again for 1.2 s"), std::string::npos)
      << hung.error().message;
  auto meanwhile = b->current("session-3.scope");
  ASSERT_FALSE(meanwhile);
  EXPECT_NE(meanwhile.error().message.find("not asked again for another"), std::string::npos)
      << meanwhile.error().message;
  {
    std::lock_guard lock(fake_.mu);
    EXPECT_EQ(fake_.get_unit_calls, 2);  // the first current() and the one that hung
    fake_.get_unit_delay = std::chrono::milliseconds(0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));  // the hung call answered; the quiet is over
  auto again = b->current("session-3.scope");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_DOUBLE_EQ((*again)[Resource::kCpu].value_or(0), 2.0);
  for (auto [key, bad] : {std::pair{"timeout", "0"}, {"timeout", "-1"}, {"timeout", "soon"}, {"timeout", ""},
                          {"max_age", "-1"}, {"max_age", "4000"}, {"max_age", "1s"}}) {
    BackendOptions o = options_;
    o.values[key] = bad;
    auto st = makeSystemdBackend(o)->configured();
    ASSERT_FALSE(st) << key << "=" << bad;
    EXPECT_NE(st.error().message.find(std::string(key) + "='" + bad + "'"), std::string::npos) << st.error().message;
  }
}

// current() answers from a read up to max_age old, so that the planner's every-round question
// costs PID 1 a read per unit per max_age; a change reads afresh, so a stale read never decides
// what is written, and the read after a change is systemd's.
TEST_F(SystemdBackendTest, RecentReadsAnswerTheRoundsButChangesReadAfresh) {
  options_.values["max_age"] = "60";
  auto b = makeSystemdBackend(options_);
  auto getUnitCalls = [&] {
    std::lock_guard lock(fake_.mu);
    return fake_.get_unit_calls;
  };
  for (int round = 0; round < 5; ++round) ASSERT_TRUE(b->current("session-3.scope"));
  EXPECT_EQ(getUnitCalls(), 1);
  {
    std::lock_guard lock(fake_.mu);
    fake_.units["session-3.scope"].cpu = 500000;  // `systemctl set-property` behind Foresight's back
  }
  EXPECT_DOUBLE_EQ((*b->current("session-3.scope"))[Resource::kCpu].value_or(0), 2.0);  // not yet seen
  // 2 cores, what the last read said: a stale read would call that "already there".
  ASSERT_TRUE(b->apply("session-3.scope", cpuMemory(2.0, std::nullopt)));
  EXPECT_EQ(unit("session-3.scope").cpu, 2000000u);
  EXPECT_EQ(setCalls(), 1);
  const int before = getUnitCalls();
  auto after = b->current("session-3.scope");  // systemd's, not the cache's
  EXPECT_EQ(getUnitCalls(), before + 1);
  EXPECT_DOUBLE_EQ((*after)[Resource::kCpu].value_or(0), 2.0);
  options_.values["max_age"] = "0";
  auto every = makeSystemdBackend(options_);
  for (int round = 0; round < 3; ++round) ASSERT_TRUE(every->current("session-3.scope"));
  EXPECT_EQ(getUnitCalls(), before + 4);
}

// The audit trail keeps systemd's own settings as the snapshot; a rollback (its own backend
// from the registry, as `foresight history --rollback` makes it) puts them back.
TEST_F(SystemdBackendTest, AuditedChangeRollsBackToSystemdsSettings) {
  auto log = AuditLog::open((tmp_.path() / "a.db").string());
  ASSERT_TRUE(log);
  BackendRegistry registry("backend");
  registerBackends(registry);
  auto b = registry.create("systemd", options_);
  ASSERT_TRUE(b);
  {
    std::lock_guard lock(fake_.mu);
    fake_.units["session-3.scope"].memory_high = 900 * 1024 * 1024;  // the unit's own MemoryHigh=
  }
  auto id = applyAndRecord(**b, "systemd", options_, *log, "session-3.scope", cpuMemory(0.75, 768 * kMiB), "r");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(unit("session-3.scope").cpu, 750000u);
  EXPECT_EQ(unit("session-3.scope").memory_high, 768u << 20);
  auto rb = rollback(*log, registry, *id);
  ASSERT_TRUE(rb) << rb.error().message;
  EXPECT_EQ(unit("session-3.scope").cpu, 2000000u);
  EXPECT_EQ(unit("session-3.scope").memory_max, 1u << 30);
  EXPECT_EQ(unit("session-3.scope").memory_high, 900u << 20);
}

// Disk I/O: both directions' entry for the io_device (/dev/block/MAJ:MIN), other devices' entries
// left as they are; rolled back through the snapshot; refused without io_device.
TEST_F(SystemdBackendTest, DiskBandwidthIsTheIoDevicesEntry) {
  {
    std::lock_guard lock(fake_.mu);
    fake_.units["web.service"].io_read["/dev/sdb"] = 1000;  // the unit's own, on another disk
  }
  auto without = makeSystemdBackend(options_);
  auto refused = without->apply("web.service", diskIo(50 * kMiB));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("io_device"), std::string::npos) << refused.error().message;
  EXPECT_EQ(setCalls(), 0);

  options_.values["io_device"] = "8:0";
  auto b = makeSystemdBackend(options_);
  ASSERT_TRUE(b->configured());
  auto log = AuditLog::open((tmp_.path() / "a.db").string());
  ASSERT_TRUE(log);
  auto id = applyAndRecord(*b, "systemd", options_, *log, "web.service", diskIo(50 * kMiB), "r");
  ASSERT_TRUE(id) << id.error().message;
  FakeUnit u = unit("web.service");
  EXPECT_EQ(u.io_read, (std::map<std::string, std::uint64_t>{{"/dev/block/8:0", 50u << 20}, {"/dev/sdb", 1000}}));
  EXPECT_EQ(u.io_write, (std::map<std::string, std::uint64_t>{{"/dev/block/8:0", 50u << 20}}));
  auto cur = b->current("web.service");
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_DOUBLE_EQ((*cur)[Resource::kDiskIo].value_or(0), 50 * kMiB);
  EXPECT_FALSE((*cur)[Resource::kCpu]);

  BackendRegistry registry("backend");
  registerBackends(registry);
  auto rb = rollback(*log, registry, *id);
  ASSERT_TRUE(rb) << rb.error().message;
  u = unit("web.service");
  EXPECT_EQ(u.io_read.at("/dev/block/8:0"), kInf);  // systemd's "no limit" for that disk
  EXPECT_EQ(u.io_read.at("/dev/sdb"), 1000u);
  EXPECT_FALSE((*makeSystemdBackend(options_)->current("web.service"))[Resource::kDiskIo]);  // b's read is recent

  options_.values["io_device"] = "sda";
  auto bad = makeSystemdBackend(options_)->configured();
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("systemd option io_device='sda'"), std::string::npos) << bad.error().message;
}

// A unit file names its disk by its node (IOReadBandwidthMax=/dev/sda 2M), not /dev/block/8:0:
// that entry is the unit's limit for the io_device until this backend writes its own, and a
// rollback restores it through the backend's own entry (systemd applies the list in order, so an
// entry of "no limit" written after the unit's would lift it).
TEST_F(SystemdBackendTest, ADisksEntryUnderAnotherNodeIsItsLimit) {
  // The backend looks device paths up under its root: the node there.
  fs::create_directories(tmp_.path() / "host/dev");
  if (::mknod((tmp_.path() / "host/dev/sda").c_str(), S_IFBLK | 0600, makedev(8, 0)) != 0)
    GTEST_SKIP() << "cannot make a block device node (needs CAP_MKNOD): " << std::strerror(errno);
  ASSERT_EQ(::mknod((tmp_.path() / "host/sdb").c_str(), S_IFBLK | 0600, makedev(8, 0)), 0);
  const std::string node = "/dev/sda";
  {
    std::lock_guard lock(fake_.mu);
    fake_.units["web.service"].io_read[node] = 2 * kMiB;
    fake_.units["web.service"].io_write[node] = 2 * kMiB;
    fake_.units["web.service"].io_read["/sdb"] = 1000;  // outside /dev: not looked at
  }
  options_.values["root"] = (tmp_.path() / "host").string();
  options_.values["io_device"] = "8:0";
  auto b = makeSystemdBackend(options_);
  auto before = b->current("web.service");
  ASSERT_TRUE(before) << before.error().message;
  EXPECT_DOUBLE_EQ((*before)[Resource::kDiskIo].value_or(0), 2 * kMiB);

  auto log = AuditLog::open((tmp_.path() / "a.db").string());
  ASSERT_TRUE(log);
  auto id = applyAndRecord(*b, "systemd", options_, *log, "web.service", diskIo(50 * kMiB), "r");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_DOUBLE_EQ((*makeSystemdBackend(options_)->current("web.service"))[Resource::kDiskIo].value_or(0),
                   50 * kMiB);  // its own entry, written last, is the one systemd applies last
  BackendRegistry registry("backend");
  registerBackends(registry);
  ASSERT_TRUE(rollback(*log, registry, *id));
  const FakeUnit u = unit("web.service");
  EXPECT_EQ(u.io_read.at("/dev/block/8:0"), 2 * kMiB);  // the unit's limit, not "none"
  EXPECT_EQ(u.io_write.at("/dev/block/8:0"), 2 * kMiB);
  EXPECT_EQ(u.io_read.at(node), 2 * kMiB);
}

// memory_high_ratio as the cgroup-v2 backend takes it: MemoryHigh= that share of MemoryMax=, in
// whole pages; refused outside (0, 1].
TEST_F(SystemdBackendTest, MemoryHighIsTheRatioOfTheLimit) {
  options_.values["memory_high_ratio"] = "0.9";
  auto b = makeSystemdBackend(options_);
  ASSERT_TRUE(b->configured());
  ASSERT_TRUE(b->apply("web.service", cpuMemory(std::nullopt, 1000 * kMiB)));
  EXPECT_EQ(unit("web.service").memory_max, 1000u << 20);
  EXPECT_EQ(unit("web.service").memory_high, 900u << 20);
  options_.values["memory_high_ratio"] = "1.5";
  auto st = makeSystemdBackend(options_)->configured();
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("systemd option memory_high_ratio='1.5'"), std::string::npos) << st.error().message;
}

// The audit record's `before` comes from the same fresh read as its snapshot, not from a recent
// read that a change behind Foresight's back has made stale.
TEST_F(SystemdBackendTest, AnAuditRecordsBeforeIsWhatSystemdHeldNotARecentRead) {
  options_.values["max_age"] = "60";
  auto log = AuditLog::open((tmp_.path() / "a.db").string());
  ASSERT_TRUE(log);
  auto b = makeSystemdBackend(options_);
  ASSERT_TRUE(b->current("session-3.scope"));  // 2 cores, kept
  {
    std::lock_guard lock(fake_.mu);
    fake_.units["session-3.scope"].cpu = 500000;
  }
  auto id = applyAndRecord(*b, "systemd", options_, *log, "session-3.scope", cpuMemory(0.75, std::nullopt), "r");
  ASSERT_TRUE(id) << id.error().message;
  auto rec = log->get(*id);
  ASSERT_TRUE(rec);
  EXPECT_DOUBLE_EQ(rec->before[Resource::kCpu].value_or(0), 0.5);
  EXPECT_DOUBLE_EQ(rec->after[Resource::kCpu].value_or(0), 0.75);
}

// Which cgroups are units of PID 1: a unit name, or a unit's cgroup below slices only.
TEST(SystemdUnits, AUnitIsItsNameOrItsCgroupBelowSlices) {
  for (const char* unit : {"nginx.service", "system.slice/nginx.service", "/system.slice/nginx.service",
                           "init.scope", "user.slice/user-1000.slice/session-3.scope", "machine.slice"})
    EXPECT_TRUE(systemdUnitOf(unit)) << unit;
  // Below a unit: a delegated subtree, or the units of a user's own systemd (user@1000.service),
  // which PID 1 does not know by those names; and cgroups that are no unit at all.
  for (const char* other : {"system.slice/docker.service/sub.scope", "foresight-42",
                            "user.slice/user-1000.slice/user@1000.service/app.slice/web.service",
                            "kubepods/burstable/pod1/abc", ".service", "system.slice/web.target"})
    EXPECT_FALSE(systemdUnitOf(other)) << other;
  EXPECT_EQ(systemdUnitOf("system.slice/nginx.service")->name, "nginx.service");
  EXPECT_EQ(systemdUnitOf("session-3.scope")->interface, "org.freedesktop.systemd1.Scope");
  auto b = makeSystemdBackend({});
  auto refused = b->manages("user.slice/user-1000.slice/user@1000.service/app.slice/web.service");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("user@1000.service/app.slice/web.service"), std::string::npos)
      << refused.error().message;
}

// `auto` on a host whose PID 1 is systemd: a unit's cgroup goes to systemd, every other cgroup to
// its files. Each cgroup below has files a wrong route would write without complaint.
class HostBackendTest : public SystemdBackendTest {
 protected:
  void SetUp() override {
    SystemdBackendTest::SetUp();
    root_ = tmp_.path() / "cgroup";
    testing::writeFile(root_ / "cgroup.controllers", "cpu io memory pids\n");
    for (const char* w : {kUnitCgroup, kOwnCgroup, kUserUnitCgroup}) testing::makeV2Fixture(root_, w);
    host_ = options_;
    host_.values["root"] = root_.string();
    host_.values["systemd"] = "yes";
  }
  std::string cpuMax(const char* w) { return testing::readFile(root_ / w / "cpu.max"); }

  static constexpr const char* kUnitCgroup = "system.slice/web.service";
  static constexpr const char* kOwnCgroup = "foresight-42";
  static constexpr const char* kUserUnitCgroup = "user.slice/user-1000.slice/user@1000.service/app.slice/web.service";
  fs::path root_;
  BackendOptions host_;
};

TEST_F(HostBackendTest, SendsUnitsToSystemdAndOtherCgroupsToTheirFiles) {
  auto b = makeHostBackend(host_);
  ASSERT_TRUE(b->configured()) << b->configured().error().message;
  EXPECT_EQ(b->pinned(), (std::map<std::string, std::string>{{"cgroup", "v2"}, {"systemd", "yes"}}));
  for (const char* w : {kUnitCgroup, kOwnCgroup, kUserUnitCgroup}) {
    EXPECT_TRUE(b->manages(w)) << w;
    auto st = b->apply(w, cpuMemory(1.5, 512 * kMiB));
    ASSERT_TRUE(st) << w << ": " << st.error().message;
  }
  EXPECT_EQ(unit("web.service").cpu, 1500000u);
  EXPECT_EQ(unit("web.service").memory_max, 512u << 20);
  EXPECT_EQ(setCalls(), 1);  // the unit's, and no other
  EXPECT_EQ(cpuMax(kUnitCgroup), "max 100000");  // systemd's to write
  EXPECT_EQ(cpuMax(kOwnCgroup), "150000 100000");
  EXPECT_EQ(cpuMax(kUserUnitCgroup), "150000 100000");  // not PID 1's unit
  auto cur = b->current(kUnitCgroup);
  ASSERT_TRUE(cur) << cur.error().message;
  EXPECT_DOUBLE_EQ((*cur)[Resource::kCpu].value_or(0), 1.5);
  // A unit's memory in use: the working set from its files (100 MiB less 40 MiB of inactive file
  // pages), not MemoryCurrent (300 MiB in the fake, cache included); without the files, that.
  testing::writeFile(root_ / kUnitCgroup / "memory.stat", "anon 62914560\ninactive_file 41943040\n");
  auto used = b->usage(kUnitCgroup);
  ASSERT_TRUE(used) << used.error().message;
  EXPECT_DOUBLE_EQ((*used)[Resource::kMemory].value_or(0), 60 * kMiB);
  fs::remove(root_ / kUnitCgroup / "memory.current");
  used = b->usage(kUnitCgroup);
  ASSERT_TRUE(used) << used.error().message;
  EXPECT_DOUBLE_EQ((*used)[Resource::kMemory].value_or(0), 300 * kMiB);
}

// On a Kubernetes node, pods' cgroups (either cgroup driver) are kubelet's: refused by name, with
// nothing written; a cgroup backend named explicitly still reaches them.
TEST_F(HostBackendTest, LeavesKubernetesPodsToKubelet) {
  const char* pods[] = {"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-a.scope",
                        "kubepods/burstable/pod1/abc", "kubepods.slice/kubepods-pod2.slice"};
  for (const char* w : pods) testing::makeV2Fixture(root_, w);
  auto b = makeHostBackend(host_);
  for (const char* w : pods) {
    auto st = b->manages(w);
    ASSERT_FALSE(st) << w;
    EXPECT_NE(st.error().message.find("kubelet"), std::string::npos) << st.error().message;
    EXPECT_FALSE(b->apply(w, cpuMemory(0.5, std::nullopt))) << w;
    EXPECT_FALSE(b->current(w)) << w;
    EXPECT_EQ(cpuMax(w), "max 100000") << w;
  }
  EXPECT_EQ(setCalls(), 0);
  EXPECT_TRUE(b->manages("system.slice/kubelet.service"));  // kubelet itself is a service like others
  BackendOptions files;
  files.values["root"] = root_.string();
  ASSERT_TRUE(makeCgroupV2Backend(files)->apply(pods[1], cpuMemory(0.5, std::nullopt)));
  EXPECT_EQ(cpuMax(pods[1]), "50000 100000");
}

// A libvirt guest's cgroup (registered with machined or not; qemu and lxc domains; the cgroups
// libvirt makes below it) is libvirt's: refused by name, nothing written. Other machines in
// machine.slice (systemd-nspawn's) are units like any other.
TEST_F(HostBackendTest, LeavesLibvirtGuestsToLibvirt) {
  const char* guests[] = {"machine.slice/machine-qemu\\x2d1\\x2dweb.scope",
                          "machine.slice/machine-qemu\\x2d1\\x2dweb.scope/libvirt/vcpu0",
                          "machine/qemu-2-db.libvirt-qemu", "machine.slice/machine-lxc\\x2d3\\x2dct.scope"};
  for (const char* w : guests) testing::makeV2Fixture(root_, w);
  auto b = makeHostBackend(host_);
  for (const char* w : guests) {
    auto st = b->manages(w);
    ASSERT_FALSE(st) << w;
    EXPECT_NE(st.error().message.find("libvirt domain"), std::string::npos) << st.error().message;
    EXPECT_FALSE(b->apply(w, cpuMemory(0.5, std::nullopt))) << w;
    EXPECT_EQ(cpuMax(w), "max 100000") << w;
  }
  EXPECT_EQ(setCalls(), 0);
  EXPECT_TRUE(b->manages("machine.slice/systemd-nspawn@deb.service"));
  EXPECT_TRUE(b->manages("machine.slice/machine-deb.scope"));
  EXPECT_TRUE(b->manages("system.slice/libvirtd.service"));  // the daemon itself is a service
}

TEST_F(HostBackendTest, WithoutSystemdEveryCgroupGoesToItsFiles) {
  host_.values["systemd"] = "no";
  auto b = makeHostBackend(host_);
  ASSERT_TRUE(b->apply(kUnitCgroup, cpuMemory(1.5, std::nullopt)));
  EXPECT_EQ(cpuMax(kUnitCgroup), "150000 100000");
  EXPECT_EQ(setCalls(), 0);
  EXPECT_EQ(unit("web.service").cpu, kInf);
}

// The record keeps where the change went (pinned cgroup and systemd), so `history --rollback`
// reaches the same place from the registry, wherever it runs.
TEST_F(HostBackendTest, ARollbackReachesWhereTheChangeWent) {
  auto log = AuditLog::open((tmp_.path() / "a.db").string());
  ASSERT_TRUE(log);
  BackendRegistry registry("backend");
  registerBackends(registry);
  BackendOptions given = host_;
  given.values.erase("systemd");  // detected (no systemd here): the record must still say yes
  auto b = makeHostBackend(host_);
  auto unit_change = applyAndRecord(*b, "auto", given, *log, "system.slice/session-3.scope", cpuMemory(0.75, std::nullopt), "r");
  ASSERT_TRUE(unit_change) << unit_change.error().message;
  auto own_change = applyAndRecord(*b, "auto", given, *log, kOwnCgroup, cpuMemory(0.5, std::nullopt), "r");
  ASSERT_TRUE(own_change) << own_change.error().message;
  EXPECT_EQ(unit("session-3.scope").cpu, 750000u);
  auto rb = rollback(*log, registry, *unit_change);
  ASSERT_TRUE(rb) << rb.error().message;
  EXPECT_EQ(unit("session-3.scope").cpu, 2000000u);
  rb = rollback(*log, registry, *own_change);
  ASSERT_TRUE(rb) << rb.error().message;
  EXPECT_EQ(cpuMax(kOwnCgroup), "max 100000");
}

TEST_F(HostBackendTest, FindsTheCgroupVersionAndRefusesWhatItCannotUse) {
  host_.values["systemd"] = "no";
  auto v2 = makeHostBackend(host_);
  ASSERT_TRUE(v2->configured());
  EXPECT_EQ(v2->pinned().at("cgroup"), "v2");
  const fs::path v1 = tmp_.path() / "v1";
  fs::create_directories(v1 / "cpu");
  host_.values["root"] = v1.string();
  EXPECT_EQ(makeHostBackend(host_)->pinned().at("cgroup"), "v1");
  host_.values["root"] = (tmp_.path() / "empty").string();
  auto none = makeHostBackend(host_)->configured();
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("empty"), std::string::npos) << none.error().message;
  host_.values["root"] = root_.string();
  for (auto [key, value] : {std::pair{"cgroup", "v3"}, std::pair{"systemd", "maybe"}}) {
    BackendOptions o = host_;
    o.values[key] = value;
    auto st = makeHostBackend(o)->configured();
    ASSERT_FALSE(st) << key;
    EXPECT_NE(st.error().message.find(value), std::string::npos) << st.error().message;
  }
}

// The backend against systemd itself: Debian's systemd 252, as a user manager (`systemd --user`),
// reached on its private socket. PID 1 here is not systemd, so the manager runs in a mount
// namespace of its own in which /run/systemd/system exists (it starts only where sd_booted()),
// and in a cgroup of its own in every hierarchy: a manager at the root cgroup would take the
// host's processes into its init.scope. A user manager has the same Manager and unit interfaces
// and properties as PID 1 (org.freedesktop.systemd1(5)); `app.slice` is one of its units.
class RealSystemdTest : public ::testing::Test {
 protected:
  static constexpr const char* kSystemd = "/lib/systemd/systemd";

  void SetUp() override {
    if (::geteuid() != 0 || !fs::exists(kSystemd) || !fs::exists("/sys/fs/cgroup"))
      GTEST_SKIP() << "needs root, " << kSystemd << " (Debian package systemd) and /sys/fs/cgroup";
    cgroup_ = "foresight-systemd-" + std::to_string(::getpid());
    if (fs::exists("/sys/fs/cgroup/cgroup.controllers")) {
      hierarchies_.push_back("/sys/fs/cgroup");
    } else {
      // Every v1 hierarchy but cpuset, whose new cgroups have no CPUs to run on until set.
      for (const auto& d : fs::directory_iterator("/sys/fs/cgroup"))
        if (d.path().filename() != "cpuset" && fs::exists(d.path() / "cgroup.procs")) hierarchies_.push_back(d.path());
    }
    std::string join;
    for (const auto& h : hierarchies_)
      join += fmt::format("mkdir -p {0}/{1} && echo $$ > {0}/{1}/cgroup.procs && ", h.string(), cgroup_);
    const fs::path t = tmp_.path();
    manager_.emplace(
        std::vector<std::string>{
            "sh", "-c",
            fmt::format("{}export XDG_RUNTIME_DIR={}/run HOME={}/home XDG_CONFIG_HOME={}/config && mkdir -p {}/run && "
                        "exec unshare --mount --propagation private sh -c "
                        "'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec {} --user'",
                        join, t.string(), t.string(), t.string(), t.string(), kSystemd)},
        t / "systemd.log");
    for (int i = 0; i < 200 && !fs::exists(t / "run/systemd/private"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(fs::exists(t / "run/systemd/private"))
        << "systemd --user did not start: " << testing::readFile(t / "systemd.log");
    options_.values["bus"] = "private";
    options_.values["root"] = t.string();  // its socket: <root>/run/systemd/private
  }

  void TearDown() override {
    manager_.reset();  // SIGTERM: the manager stops its units and exits
    // Then its cgroups, deepest first; anything left in them is killed.
    for (const auto& h : hierarchies_) {
      const fs::path top = h / cgroup_;
      if (!fs::exists(top)) continue;
      std::vector<fs::path> dirs{top};
      for (const auto& d : fs::recursive_directory_iterator(top))
        if (d.is_directory()) dirs.push_back(d.path());
      std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) { return a.string().size() > b.string().size(); });
      for (const auto& d : dirs)
        for (int i = 0; i < 50 && ::rmdir(d.c_str()) != 0; ++i) {
          std::istringstream procs(testing::readFile(d / "cgroup.procs"));
          for (pid_t pid; procs >> pid;) ::kill(pid, SIGKILL);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
  }

  // systemctl, another client of the same manager.
  test_support::Ran systemctl(const std::string& args) {
    return test_support::runShell(fmt::format("XDG_RUNTIME_DIR={}/run systemctl --user {}", tmp_.path().string(), args));
  }
  // What systemctl says of a unit's property.
  std::string show(const std::string& unit, const std::string& property) {
    const auto ran = systemctl(fmt::format("show {} -p {} --value", unit, property));
    EXPECT_EQ(ran.exit_code, 0) << ran.all();
    return ran.out.substr(0, ran.out.find('\n'));
  }

  testing::TempDir tmp_;
  std::string cgroup_;
  std::vector<fs::path> hierarchies_;
  std::optional<test_support::ServerProcess> manager_;
  BackendOptions options_;
};

TEST_F(RealSystemdTest, SetsReadsAndRollsBackAUnitsLimitsThroughSystemd) {
  auto b = makeSystemdBackend(options_);
  auto before = b->current("app.slice");
  ASSERT_TRUE(before) << before.error().message;
  EXPECT_FALSE((*before)[Resource::kCpu]);
  EXPECT_FALSE((*before)[Resource::kMemory]);

  auto log = AuditLog::open((tmp_.path() / "a.db").string());
  ASSERT_TRUE(log);
  BackendRegistry registry("backend");
  registerBackends(registry);
  auto id = applyAndRecord(*b, "systemd", options_, *log, "app.slice", cpuMemory(1.23451, 256 * kMiB + 1), "r");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(show("app.slice", "CPUQuotaPerSecUSec"), "1.240000s");  // up to whole percent
  EXPECT_EQ(show("app.slice", "MemoryMax"), std::to_string(256 * 1024 * 1024 + 4096));
  EXPECT_EQ(show("app.slice", "MemoryHigh"), std::to_string(256 * 1024 * 1024 + 4096));
  // A runtime change: systemd's drop-in under its runtime control folder, as set-property --runtime.
  const std::string dropin = testing::readFile(tmp_.path() / "run/systemd/user.control/app.slice.d/50-CPUQuota.conf");
  EXPECT_NE(dropin.find("CPUQuota=124%"), std::string::npos) << dropin;

  // A daemon-reload reads the drop-in back: the value is unchanged (on a finer grid than whole
  // percent, systemd 252 would have cut it down here), so the same target is "already there".
  const auto reload = systemctl("daemon-reload");
  ASSERT_EQ(reload.exit_code, 0) << reload.all();
  auto fresh = makeSystemdBackend(options_);
  auto now = fresh->current("app.slice");
  ASSERT_TRUE(now) << now.error().message;
  EXPECT_DOUBLE_EQ((*now)[Resource::kCpu].value_or(0), 1.24);
  EXPECT_DOUBLE_EQ((*now)[Resource::kMemory].value_or(0), 256 * kMiB + 4096);

  // A daemon-reexec (as a systemd upgrade does) closes the private socket's connections: a backend
  // that had one connects again, and the runtime limit is still there.
  options_.values["max_age"] = "0";  // every read asks
  auto connected = makeSystemdBackend(options_);
  ASSERT_TRUE(connected->current("app.slice"));
  const auto reexec = systemctl("daemon-reexec");
  ASSERT_EQ(reexec.exit_code, 0) << reexec.all();
  auto reconnected = connected->current("app.slice");
  ASSERT_TRUE(reconnected) << reconnected.error().message;
  EXPECT_DOUBLE_EQ((*reconnected)[Resource::kCpu].value_or(0), 1.24);

  auto rb = rollback(*log, registry, *id);
  ASSERT_TRUE(rb) << rb.error().message;
  EXPECT_EQ(show("app.slice", "CPUQuotaPerSecUSec"), "infinity");
  EXPECT_EQ(show("app.slice", "MemoryMax"), "infinity");
  EXPECT_EQ(show("app.slice", "MemoryHigh"), "infinity");

  auto gone = b->current("nosuch.service");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound) << gone.error().message;
  EXPECT_NE(gone.error().message.find("org.freedesktop.systemd1.NoSuchUnit"), std::string::npos) << gone.error().message;
}

TEST_F(RealSystemdTest, SetsAUnitsDiskBandwidthForItsDevice) {
  options_.values["io_device"] = "254:0";
  options_.values["max_age"] = "0";  // every read asks
  auto b = makeSystemdBackend(options_);
  ASSERT_TRUE(b->configured());
  auto st = b->apply("app.slice", diskIo(50 * kMiB));
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ(show("app.slice", "IOReadBandwidthMax"), "/dev/block/254:0 52428800");
  EXPECT_EQ(show("app.slice", "IOWriteBandwidthMax"), "/dev/block/254:0 52428800");
  const auto reload = systemctl("daemon-reload");
  ASSERT_EQ(reload.exit_code, 0) << reload.all();
  auto now = b->current("app.slice");
  ASSERT_TRUE(now) << now.error().message;
  EXPECT_DOUBLE_EQ((*now)[Resource::kDiskIo].value_or(0), 50 * kMiB);
  st = b->apply("app.slice", diskIo(INFINITY));
  ASSERT_TRUE(st) << st.error().message;
  now = b->current("app.slice");
  ASSERT_TRUE(now) << now.error().message;
  EXPECT_FALSE((*now)[Resource::kDiskIo]);
}

// The unit's own entry names the disk by its node, as unit files do: it is the unit's limit until
// the backend writes its own, and a rollback restores it. systemd applies the entries in order, so
// the backend's, written after, is what the kernel enforces (read from the cgroup's file), and a
// rollback that wrote "no limit" there would lift the unit's.
TEST_F(RealSystemdTest, AUnitsEntryForItsDiskUnderItsNodeIsItsLimit) {
  // The backend looks device paths up under its root (here the manager's folder): the node there.
  fs::create_directories(tmp_.path() / "dev");
  if (::mknod((tmp_.path() / "dev/vda").c_str(), S_IFBLK | 0600, makedev(254, 0)) != 0)
    GTEST_SKIP() << "cannot make a block device node: " << std::strerror(errno);
  const auto set = systemctl("set-property --runtime app.slice 'IOReadBandwidthMax=/dev/vda 10M' "
                             "'IOWriteBandwidthMax=/dev/vda 10M'");  // 10M: 10^7 bytes/s to systemd
  ASSERT_EQ(set.exit_code, 0) << set.all();
  // What the kernel enforces for 254:0 on reads, from app.slice's cgroup (v1 blkio, v2 io.max);
  // empty where the manager's slice has no such file.
  auto enforced = [&]() -> std::string {
    for (const auto& h : hierarchies_) {
      for (const char* f : {"blkio.throttle.read_bps_device", "io.max"}) {
        std::istringstream in(testing::readFile(h / cgroup_ / "app.slice" / f));
        for (std::string line; std::getline(in, line);)
          if (line.starts_with("254:0 ")) return line.substr(6);
      }
    }
    return "";
  };
  options_.values["io_device"] = "254:0";
  options_.values["max_age"] = "0";  // every read asks
  auto b = makeSystemdBackend(options_);
  auto before = b->current("app.slice");
  ASSERT_TRUE(before) << before.error().message;
  EXPECT_DOUBLE_EQ((*before)[Resource::kDiskIo].value_or(0), 10e6);

  auto log = AuditLog::open((tmp_.path() / "a.db").string());
  ASSERT_TRUE(log);
  auto id = applyAndRecord(*b, "systemd", options_, *log, "app.slice", diskIo(50 * kMiB), "r");
  ASSERT_TRUE(id) << id.error().message;
  auto now = b->current("app.slice");
  ASSERT_TRUE(now) << now.error().message;
  EXPECT_DOUBLE_EQ((*now)[Resource::kDiskIo].value_or(0), 50 * kMiB);
  const std::string applied = enforced();
  if (!applied.empty()) {
    EXPECT_NE(applied.find("52428800"), std::string::npos) << applied;
  }

  BackendRegistry registry("backend");
  registerBackends(registry);
  auto rb = rollback(*log, registry, *id);
  ASSERT_TRUE(rb) << rb.error().message;
  now = b->current("app.slice");
  ASSERT_TRUE(now) << now.error().message;
  EXPECT_DOUBLE_EQ((*now)[Resource::kDiskIo].value_or(0), 10e6);
  if (!applied.empty()) {
    const std::string back = enforced();
    EXPECT_NE(back.find("10000000"), std::string::npos) << back;
  }
}

}  // namespace
}  // namespace foresight::allocate
