#pragma once
// Real guests for the libvirt tests: a libvirt daemon of the test's own (session mode, as an
// unprivileged user: nobody when the test runs as root, since a root libvirtd is the system one
// and wants the packaged libvirt-qemu account and config) driving QEMU with TCG (no /dev/kvm
// needed, slower), and guests booted from the host's packaged kernel with a busybox initramfs
// (tests/support/guest). `unavailable` says what this host lacks, for a skip.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "server_process.h"
#include "shell.h"

namespace foresight::test_support {

class QemuLibvirt {
 public:
  QemuLibvirt() {
    namespace fs = std::filesystem;
    for (const char* tool : {"qemu-system-x86_64", "libvirtd", "busybox", "cpio", "setpriv"})
      if (runShell(fmt::format("command -v {} >/dev/null", tool)).exit_code != 0) {
        unavailable = fmt::format("no {} (Debian: qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu "
                                  "busybox-static cpio)", tool);
        return;
      }
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/boot", ec)) {
      const std::string name = e.path().filename().string();
      if (!name.starts_with("vmlinuz-")) continue;
      const std::string version = name.substr(8);
      if (fs::exists("/lib/modules/" + version + "/kernel/drivers/virtio/virtio_balloon.ko") && version > version_) {
        version_ = version;
        kernel_ = e.path();
      }
    }
    if (version_.empty()) {
      unavailable = "no /boot/vmlinuz-* with its virtio_balloon module (Debian: linux-image-cloud-amd64)";
      return;
    }
    reapLeftovers();
    dir_ = fs::temp_directory_path() / fmt::format("foresight-qemu-{}", ::getpid());
    fs::remove_all(dir_, ec);
    fs::create_directories(dir_ / "home");
    fs::create_directories(dir_ / "run");
    ::chmod(dir_.c_str(), 0755);
    const bool root = ::geteuid() == 0;
    if (root) {
      for (const char* d : {"home", "run"})
        if (::chown((dir_ / d).c_str(), 65534, 65534) != 0) {
          unavailable = "cannot hand the daemon's folders to nobody";
          return;
        }
    }
    ::chmod((dir_ / "run").c_str(), 0700);
    const auto made = runShell(fmt::format("'{}/tests/support/guest/make-initramfs.sh' '{}' '{}'", FORESIGHT_SOURCE_DIR,
                                           version_, (dir_ / "initrd.gz").string()));
    if (made.exit_code != 0) {
      unavailable = "cannot build the guest's initramfs: " + made.all();
      return;
    }
    ::chmod((dir_ / "initrd.gz").c_str(), 0644);
    if (root) argv_ = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    argv_.insert(argv_.end(), {"env", "HOME=" + (dir_ / "home").string(), "XDG_RUNTIME_DIR=" + (dir_ / "run").string(),
                               "libvirtd"});
    uri = "qemu+unix:///session?socket=" + (dir_ / "run/libvirt/libvirt-sock").string();
    if (!startDaemon()) unavailable = "libvirtd did not start: " + log();
  }
  // The daemon and guests of a test binary that was killed (its destructor never ran): they run on
  // as nobody, holding memory and CPU, until the host reboots. Found by their folder,
  // foresight-qemu-<pid> of a pid no longer running, named in QEMU's command line (the initramfs)
  // and in libvirtd's environment (HOME).
  static void reapLeftovers() {
    namespace fs = std::filesystem;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::temp_directory_path(), ec)) {
      const std::string name = e.path().filename().string();
      if (!name.starts_with("foresight-qemu-")) continue;
      const pid_t owner = static_cast<pid_t>(std::atol(name.c_str() + 15));
      if (owner <= 0 || ::kill(owner, 0) == 0 || errno != ESRCH) continue;
      const std::string dir = e.path().string();
      for (const auto& p : fs::directory_iterator("/proc", ec)) {
        const std::string pid = p.path().filename().string();
        if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
        for (const char* file : {"cmdline", "environ"}) {
          std::ifstream in(p.path() / file, std::ios::binary);
          const std::string text((std::istreambuf_iterator<char>(in)), {});
          if (text.find(dir + "/") == std::string::npos) continue;
          ::kill(static_cast<pid_t>(std::stol(pid)), SIGKILL);
          break;
        }
      }
      fs::remove_all(e.path(), ec);
    }
  }
  // libvirtd's process (setpriv and env exec it), or -1.
  pid_t daemonPid() const { return daemon_ ? daemon_->pid() : -1; }
  // Stops libvirtd and starts it again (its guests run on, as QEMU runs apart from it).
  bool restartDaemon() {
    if (conn_) virConnectClose(conn_);
    conn_ = nullptr;
    daemon_.reset();
    std::filesystem::remove(dir_ / "run/libvirt/libvirt-sock");
    return startDaemon();
  }
  ~QemuLibvirt() {
    if (conn_) {
      virDomainPtr* doms = nullptr;
      const int n = virConnectListAllDomains(conn_, &doms, 0);
      for (int i = 0; i < n; ++i) {
        virDomainDestroy(doms[i]);
        virDomainFree(doms[i]);
      }
      free(doms);
      virConnectClose(conn_);
    }
    daemon_.reset();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  QemuLibvirt(const QemuLibvirt&) = delete;
  QemuLibvirt& operator=(const QemuLibvirt&) = delete;

  std::string unavailable;  // empty: guests can be booted
  std::string uri;          // the daemon's connection URI

  // Boots a guest (a virtio balloon reporting every second); `args`: its init's fs.after=, fs.fill=,
  // fs.spin= and fs.readdisk= (tests/support/guest/init); `disk_mib` > 0: a virtio disk vda of
  // that size (a sparse raw file). "" when it runs, else libvirt's error.
  std::string boot(const std::string& name, int vcpus, int max_vcpus, int memory_mib, const std::string& args,
                   int disk_mib = 0) {
    std::string disk;
    if (disk_mib > 0) {
      const auto image = dir_ / "home" / (name + ".img");
      std::ofstream(image).close();  // created empty, then made sparse to its size
      std::error_code ec;
      std::filesystem::resize_file(image, static_cast<std::uintmax_t>(disk_mib) << 20, ec);
      if (ec) return "cannot make the disk image: " + ec.message();
      if (::geteuid() == 0 && ::chown(image.c_str(), 65534, 65534) != 0) return "cannot hand the disk to nobody";
      disk = fmt::format("<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/>"
                         "<target dev='vda' bus='virtio'/></disk>",
                         image.string());
    }
    const std::string xml = fmt::format(
        "<domain type='qemu'><name>{0}</name><memory unit='MiB'>{1}</memory>"
        "<vcpu placement='static' current='{2}'>{3}</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type><kernel>{4}</kernel><initrd>{5}</initrd>"
        "<cmdline>console=ttyS0 quiet panic=-1 {6}</cmdline></os><features><acpi/></features>"
        "<on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash><devices>"
        "<serial type='file'><source path='{7}'/><target port='0'/></serial>"
        "{8}<memballoon model='virtio'><stats period='1'/></memballoon></devices></domain>",
        name, memory_mib, vcpus, max_vcpus, kernel_.string(), (dir_ / "initrd.gz").string(), args,
        console(name).string(), disk);
    virDomainPtr d = virDomainCreateXML(conn_, xml.c_str(), 0);
    if (!d) {
      const char* error = virGetLastErrorMessage();
      return error ? error : "unknown libvirt error";
    }
    virDomainFree(d);
    return "";
  }
  // Whether the guest's console shows `text` within `seconds`.
  bool waitForConsole(const std::string& name, const std::string& text, double seconds) const {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    do {
      if (consoleText(name).find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } while (std::chrono::steady_clock::now() < until);
    return false;
  }
  std::string consoleText(const std::string& name) const {
    std::stringstream ss;
    ss << std::ifstream(console(name)).rdbuf();
    return ss.str();
  }
  std::string log() const {
    std::stringstream ss;
    ss << std::ifstream(dir_ / "libvirtd.log").rdbuf();
    return ss.str();
  }

 private:
  std::filesystem::path console(const std::string& name) const { return dir_ / "home" / (name + ".console"); }
  bool startDaemon() {
    daemon_.emplace(argv_, dir_ / "libvirtd.log");
    for (int i = 0; i < 200 && !conn_; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (std::filesystem::exists(dir_ / "run/libvirt/libvirt-sock")) conn_ = virConnectOpen(uri.c_str());
    }
    return conn_ != nullptr;
  }
  std::vector<std::string> argv_;
  std::filesystem::path dir_, kernel_;
  std::string version_;
  std::optional<ServerProcess> daemon_;
  virConnectPtr conn_ = nullptr;
};

}  // namespace foresight::test_support
