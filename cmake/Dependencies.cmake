# Every dependency comes from Debian 12's packages; scripts/deps.sh installs them.
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
find_package(tl-expected REQUIRED)
find_package(Eigen3 REQUIRED NO_MODULE)
if(FORESIGHT_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(FORESIGHT_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
# The allocator (src/allocate): SQLite audit trail, YAML price catalog, Kubernetes over
# cpp-httplib with OpenSSL (Debian builds cpp-httplib as a library with OpenSSL enabled; its
# pkg-config file carries CPPHTTPLIB_OPENSSL_SUPPORT), libvirt's C API.
find_package(PkgConfig REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(yaml-cpp REQUIRED)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
pkg_check_modules(LIBVIRT REQUIRED IMPORTED_TARGET libvirt)
