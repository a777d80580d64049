#pragma once
// A running guest of libvirt's built-in test driver (test:///default: no daemon; its state is
// shared by every connection of the process), destroyed when the object goes.
#include <libvirt/libvirt.h>

#include <fmt/format.h>

#include <string>

namespace foresight::test_support {

class TestDriverGuest {
 public:
  // `balloon`: a virtio memballoon with a stats period, so that the driver reports the guest's
  // memory statistics (it gives available = the balloon, usable = unused = half of it).
  // `boot_vcpus` > 0: a <vcpus> layout as QEMU's live XML shows one whose vCPUs past the first
  // `boot_vcpus` were hot-plugged (those can be unplugged); 0: none, every vCPU is a boot one.
  // `uuid`: the domain's, else libvirt makes one up.
  TestDriverGuest(const std::string& name, int vcpus, int max_vcpus, int memory_mib, int max_memory_mib,
                  bool balloon, int boot_vcpus = 0, const std::string& uuid = "") {
    conn_ = virConnectOpen("test:///default");
    std::string layout;
    for (int i = 0; boot_vcpus > 0 && i < max_vcpus; ++i)
      layout += fmt::format("<vcpu id='{}' enabled='{}' hotpluggable='{}'/>", i, i < vcpus ? "yes" : "no",
                            i < boot_vcpus ? "no" : "yes");
    const std::string xml = fmt::format(
        "<domain type='test'><name>{}</name>{}<memory unit='MiB'>{}</memory>"
        "<currentMemory unit='MiB'>{}</currentMemory><vcpu current='{}'>{}</vcpu>{}<os><type>hvm</type></os>"
        "<devices>{}</devices></domain>",
        name, uuid.empty() ? "" : "<uuid>" + uuid + "</uuid>", max_memory_mib, memory_mib, vcpus, max_vcpus, layout.empty() ? "" : "<vcpus>" + layout + "</vcpus>",
        balloon ? "<memballoon model='virtio'><stats period='10'/></memballoon>" : "");
    if (conn_) dom_ = virDomainCreateXML(conn_, xml.c_str(), 0);
  }
  ~TestDriverGuest() {
    if (dom_) {
      virDomainDestroy(dom_);
      virDomainFree(dom_);
    }
    if (conn_) virConnectClose(conn_);
  }
  TestDriverGuest(const TestDriverGuest&) = delete;
  TestDriverGuest& operator=(const TestDriverGuest&) = delete;
  bool running() const { return dom_ != nullptr; }
  // Stops it (a guest shut down between two rounds).
  void destroy() {
    if (dom_) virDomainDestroy(dom_);
  }

 private:
  virConnectPtr conn_ = nullptr;
  virDomainPtr dom_ = nullptr;
};

}  // namespace foresight::test_support
