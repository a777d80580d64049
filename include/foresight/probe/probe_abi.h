/* Shared-memory layout written by libforesight-probe.so (LD_PRELOAD) and read by the agent.
 * Plain C so that the probe needs no C++ runtime in the profiled process.
 *
 * One segment per process: <dir>/foresight-probe-<pid>, dir = $FORESIGHT_PROBE_DIR or /dev/shm.
 * Writers update counters with relaxed atomic adds (no locks); readers may see a call counted in
 * `calls` before its bytes, which is harmless for rates.
 * Thread-safety: any number of writer threads in the process, any number of readers. */
#ifndef FORESIGHT_PROBE_ABI_H
#define FORESIGHT_PROBE_ABI_H

#include <stdint.h>

#define FS_PROBE_MAGIC 0x31424f5250534652ull /* "RFSPROB1" */
#define FS_PROBE_VERSION 1u
#define FS_PROBE_BUCKETS 40 /* bucket b: latency in [2^(b-1), 2^b) ns; bucket 0: 0 ns; last: >= 2^38 ns */

enum fs_probe_class {
  FS_PROBE_READ = 0,  /* read, pread(64), readv, preadv */
  FS_PROBE_WRITE,     /* write, pwrite(64), writev, pwritev */
  FS_PROBE_SEND,      /* send, sendto, sendmsg */
  FS_PROBE_RECV,      /* recv, recvfrom, recvmsg */
  FS_PROBE_FSYNC,     /* fsync, fdatasync */
  FS_PROBE_CONNECT,   /* connect */
  FS_PROBE_ACCEPT,    /* accept, accept4 */
  FS_PROBE_PIPE,      /* pipe, pipe2 */
  FS_PROBE_SOCKET,    /* socket, socketpair */
  FS_PROBE_CLASSES
};

struct fs_probe_counters {
  uint64_t calls;
  uint64_t errors;   /* calls that returned -1 */
  uint64_t bytes;    /* bytes moved by successful data calls */
  uint64_t total_ns; /* summed latency */
  uint64_t hist[FS_PROBE_BUCKETS];
};

struct fs_probe_segment {
  uint64_t magic;
  uint32_t version;
  uint32_t classes;
  int32_t pid;
  uint32_t execs; /* images of this pid that attached (1 + number of execs) */
  struct fs_probe_counters c[FS_PROBE_CLASSES];
};

static inline const char* fs_probe_class_name(int k) {
  static const char* const names[FS_PROBE_CLASSES] = {"read",    "write",  "send", "recv",  "fsync",
                                                      "connect", "accept", "pipe", "socket"};
  return (k >= 0 && k < FS_PROBE_CLASSES) ? names[k] : "?";
}

#endif
