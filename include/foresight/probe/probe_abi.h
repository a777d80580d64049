/* Shared-memory layout written by libforesight-probe.so (LD_PRELOAD) and read by the agent.
 * Plain C so that the probe needs no C++ runtime in the profiled process.
 *
 * One segment per process: <dir>/foresight-probe-<pid>-<start>-<pidns>, dir = $FORESIGHT_PROBE_DIR
 * or /dev/shm; pid as the process sees itself (in its own pid namespace), start = field 22 of
 * /proc/<pid>/stat (clock ticks after boot; kept by exec), pidns = inode of /proc/<pid>/ns/pid.
 * A pid alone named a leftover segment of an exited process as well as a new process given the
 * same pid, and the processes numbered alike in different pid namespaces (containers).
 * Writers update counters with relaxed atomic adds (no locks); readers may see a call counted in
 * `calls` before its bytes, which is harmless for rates.
 * Thread-safety: any number of writer threads in the process, any number of readers. */
#ifndef FORESIGHT_PROBE_ABI_H
#define FORESIGHT_PROBE_ABI_H

#include <stdint.h>

#define FS_PROBE_MAGIC 0x32424f5250534652ull /* "RFSPROB2" */
#define FS_PROBE_VERSION 2u
#define FS_PROBE_BUCKETS 40 /* bucket b: latency in [2^(b-1), 2^b) ns; bucket 0: 0 ns; last: >= 2^38 ns */
#define FS_PROBE_PREFIX "foresight-probe-"

/* Calls that copy between two descriptors (copy_file_range, sendfile(64), splice) count as one
 * read of the bytes and one write of them. */
enum fs_probe_class {
  FS_PROBE_READ = 0,  /* read, pread(64), readv, preadv(64)(v2), __read_chk, __pread(64)_chk */
  FS_PROBE_WRITE,     /* write, pwrite(64), writev, pwritev(64)(v2) */
  FS_PROBE_SEND,      /* send, sendto, sendmsg, sendmmsg */
  FS_PROBE_RECV,      /* recv, recvfrom, recvmsg, recvmmsg, __recv_chk, __recvfrom_chk */
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
  int32_t pid;    /* in the process's own pid namespace */
  uint32_t execs; /* images of this pid that attached (1 + number of execs) */
  uint64_t start; /* field 22 of /proc/<pid>/stat */
  uint64_t pidns; /* inode of /proc/<pid>/ns/pid */
  struct fs_probe_counters c[FS_PROBE_CLASSES];
};

static inline const char* fs_probe_class_name(int k) {
  static const char* const names[FS_PROBE_CLASSES] = {"read",    "write",  "send", "recv",  "fsync",
                                                      "connect", "accept", "pipe", "socket"};
  return (k >= 0 && k < FS_PROBE_CLASSES) ? names[k] : "?";
}

#endif
