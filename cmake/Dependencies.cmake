# Every dependency comes from Debian 12's packages; scripts/deps.sh installs them.
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
find_package(tl-expected REQUIRED)
find_package(Eigen3 REQUIRED NO_MODULE)
# Environment matcher: gradient-boosted trees, linear algebra for probe choice, run store, YAML.
# Debian 12's xgboost CMake config also imports the `xgboost` CLI binary, which libxgboost-dev does
# not install, so find_package(xgboost) fails; find the library and header directly instead.
find_library(XGBOOST_LIBRARY NAMES xgboost REQUIRED)
find_path(XGBOOST_INCLUDE_DIR xgboost/c_api.h REQUIRED)
if(NOT TARGET xgboost::xgboost)
  add_library(xgboost::xgboost UNKNOWN IMPORTED)
  set_target_properties(xgboost::xgboost PROPERTIES IMPORTED_LOCATION "${XGBOOST_LIBRARY}"
                                                    INTERFACE_INCLUDE_DIRECTORIES "${XGBOOST_INCLUDE_DIR}")
endif()
find_package(SQLite3 REQUIRED)
find_package(yaml-cpp REQUIRED)
# Profiler: Prometheus exposition.
find_package(prometheus-cpp REQUIRED)
if(FORESIGHT_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(FORESIGHT_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
# The allocator (src/allocate): SQLite audit trail, YAML price catalog, Kubernetes over
# cpp-httplib with OpenSSL (Debian builds cpp-httplib as a library with OpenSSL enabled; its
# pkg-config file carries CPPHTTPLIB_OPENSSL_SUPPORT), libvirt's C API with libxml2 for the domain
# XML it answers some questions in, systemd's sd-bus.
find_package(PkgConfig REQUIRED)
find_package(OpenSSL REQUIRED)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
pkg_check_modules(LIBVIRT REQUIRED IMPORTED_TARGET libvirt)
pkg_check_modules(LIBXML2 REQUIRED IMPORTED_TARGET libxml-2.0)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
# Debian's libtorch (1.13); it links libblas.so.3, which update-alternatives points at OpenBLAS.
find_package(Torch REQUIRED)
