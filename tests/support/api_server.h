#pragma once
// Fake Kubernetes API servers (cpp-httplib) set up as the real one behaves on a connection: the
// client keeps its connection alive between requests, as client-go does.
#include <httplib.h>

namespace foresight::test_support {

inline void likeTheApiServer(httplib::Server& server) {
  server.set_tcp_nodelay(true);  // as Go's net/http: else Nagle and delayed ACKs stall keep-alive
  // A stopped server waits for each idle kept-alive connection to time out (5 s by default).
  server.set_keep_alive_timeout(1);
}

}  // namespace foresight::test_support
