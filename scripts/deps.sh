#!/usr/bin/env bash
# Installs the Debian 12 packages Foresight needs, or prints the command when not root.
# Usage: scripts/deps.sh [build|test|all]
set -euo pipefail
what="${1:-all}"

build_pkgs=(
  cmake ninja-build g++ pkg-config
  zlib1g-dev libfmt-dev libspdlog-dev nlohmann-json3-dev libcli11-dev libexpected-dev
  libeigen3-dev libsqlite3-dev libyaml-cpp-dev libcpp-httplib-dev prometheus-cpp-dev
  libtorch-dev libopenblas0-pthread libxgboost-dev libvirt-dev libxml2-dev libsystemd-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
# systemd: systemd-analyze checks the installed unit; dbus-daemon: the bus of the systemd backend's test;
# QEMU, libvirtd, a packaged kernel and a static busybox: the real guests of `foresight guests`' tests;
# virsh (libvirt-clients): runs the commands its advice gives
test_pkgs=(prometheus stress-ng systemd dbus-daemon
  qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu linux-image-cloud-amd64 busybox-static cpio
  libvirt-clients)

pkgs=("${build_pkgs[@]}")
if [[ "$what" == test || "$what" == all ]]; then pkgs+=("${test_pkgs[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then exit 0; fi

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "Foresight needs these Debian packages: ${missing[*]}" >&2
  echo "Run as root:  $cmd" >&2
  exit 1
fi
echo "Installing: ${missing[*]}" >&2
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
