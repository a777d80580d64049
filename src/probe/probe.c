/* libforesight-probe.so: LD_PRELOAD interposer for I/O and IPC calls. Per call class it keeps
 * call, error and byte counts and a log2 latency histogram in a per-process shared-memory segment
 * (foresight/probe/probe_abi.h) that the agent maps.
 *
 * Hot path: two vDSO clock reads and relaxed atomic adds; no allocation, no lock. The segment is
 * created in the constructor (or lazily by the first intercepted call), re-created for the child
 * after fork, and re-opened without truncation after exec so counts of one process accumulate
 * (exec keeps the pid and start time that name it, probe_abi.h). Without
 * a writable segment (no /dev/shm, no agent, anything), counts go to a private static segment:
 * the program never fails because of the probe. Thread-safety: all entry points are thread-safe. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "foresight/probe/probe_abi.h"

#define EXPORT __attribute__((visibility("default")))

static struct fs_probe_segment g_fallback;
static _Atomic(struct fs_probe_segment*) g_seg = NULL;
static atomic_int g_init_state = 0; /* 0 none, 1 in progress, 2 done */

/* Real functions, resolved once. */
static ssize_t (*r_read)(int, void*, size_t);
static ssize_t (*r_write)(int, const void*, size_t);
static ssize_t (*r_pread)(int, void*, size_t, off_t);
static ssize_t (*r_pwrite)(int, const void*, size_t, off_t);
static ssize_t (*r_pread64)(int, void*, size_t, off_t);
static ssize_t (*r_pwrite64)(int, const void*, size_t, off_t);
static ssize_t (*r_readv)(int, const struct iovec*, int);
static ssize_t (*r_writev)(int, const struct iovec*, int);
static ssize_t (*r_preadv)(int, const struct iovec*, int, off_t);
static ssize_t (*r_pwritev)(int, const struct iovec*, int, off_t);
static ssize_t (*r_send)(int, const void*, size_t, int);
static ssize_t (*r_sendto)(int, const void*, size_t, int, const struct sockaddr*, socklen_t);
static ssize_t (*r_sendmsg)(int, const struct msghdr*, int);
static ssize_t (*r_recv)(int, void*, size_t, int);
static ssize_t (*r_recvfrom)(int, void*, size_t, int, struct sockaddr*, socklen_t*);
static ssize_t (*r_recvmsg)(int, struct msghdr*, int);
static int (*r_fsync)(int);
static int (*r_fdatasync)(int);
static int (*r_connect)(int, const struct sockaddr*, socklen_t);
static int (*r_accept)(int, struct sockaddr*, socklen_t*);
static int (*r_accept4)(int, struct sockaddr*, socklen_t*, int);
static int (*r_pipe)(int[2]);
static int (*r_pipe2)(int[2], int);
static int (*r_socket)(int, int, int);
static int (*r_socketpair)(int, int, int, int[2]);
static ssize_t (*r___read_chk)(int, void*, size_t, size_t);
static ssize_t (*r___pread_chk)(int, void*, size_t, off_t, size_t);
static ssize_t (*r___pread64_chk)(int, void*, size_t, off64_t, size_t);
static ssize_t (*r___recv_chk)(int, void*, size_t, size_t, int);
static ssize_t (*r___recvfrom_chk)(int, void*, size_t, size_t, int, struct sockaddr*, socklen_t*);
static ssize_t (*r_preadv64)(int, const struct iovec*, int, off64_t);
static ssize_t (*r_pwritev64)(int, const struct iovec*, int, off64_t);
static ssize_t (*r_preadv2)(int, const struct iovec*, int, off_t, int);
static ssize_t (*r_pwritev2)(int, const struct iovec*, int, off_t, int);
static ssize_t (*r_preadv64v2)(int, const struct iovec*, int, off64_t, int);
static ssize_t (*r_pwritev64v2)(int, const struct iovec*, int, off64_t, int);
static ssize_t (*r_copy_file_range)(int, off64_t*, int, off64_t*, size_t, unsigned int);
static ssize_t (*r_sendfile)(int, int, off_t*, size_t);
static ssize_t (*r_sendfile64)(int, int, off64_t*, size_t);
static ssize_t (*r_splice)(int, off64_t*, int, off64_t*, size_t, unsigned int);
static int (*r_sendmmsg)(int, struct mmsghdr*, unsigned int, int);
static int (*r_recvmmsg)(int, struct mmsghdr*, unsigned int, int, struct timespec*);

/* POSIX idiom for storing a dlsym result in a function pointer without a pedantic cast. */
#define RESOLVE(name) *(void**)(&r_##name) = dlsym(RTLD_NEXT, #name)

static void resolve_all(void) {
  RESOLVE(read); RESOLVE(write); RESOLVE(pread); RESOLVE(pwrite); RESOLVE(pread64);
  RESOLVE(pwrite64); RESOLVE(readv); RESOLVE(writev); RESOLVE(preadv); RESOLVE(pwritev);
  RESOLVE(send); RESOLVE(sendto); RESOLVE(sendmsg); RESOLVE(recv); RESOLVE(recvfrom);
  RESOLVE(recvmsg); RESOLVE(fsync); RESOLVE(fdatasync); RESOLVE(connect); RESOLVE(accept);
  RESOLVE(accept4); RESOLVE(pipe); RESOLVE(pipe2); RESOLVE(socket); RESOLVE(socketpair);
  RESOLVE(__read_chk); RESOLVE(__pread_chk); RESOLVE(__pread64_chk); RESOLVE(__recv_chk);
  RESOLVE(__recvfrom_chk); RESOLVE(preadv64); RESOLVE(pwritev64); RESOLVE(preadv2);
  RESOLVE(pwritev2); RESOLVE(preadv64v2); RESOLVE(pwritev64v2); RESOLVE(copy_file_range);
  RESOLVE(sendfile); RESOLVE(sendfile64); RESOLVE(splice); RESOLVE(sendmmsg); RESOLVE(recvmmsg);
}

static char* append_u64(char* out, char* end, uint64_t v) {
  char digits[24];
  int d = 0;
  do { digits[d++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (d > 0 && out < end) *out++ = digits[--d];
  return out;
}

/* <dir>/foresight-probe-<pid>-<start>-<pidns> (probe_abi.h) without snprintf (async-signal-safe:
 * also used in the fork child handler). 0 when it does not fit: a cut name would be another's. */
static int segment_path(char* out, size_t cap, pid_t pid, uint64_t start, uint64_t pidns) {
  const char* dir = getenv("FORESIGHT_PROBE_DIR");
  if (!dir || !*dir) dir = "/dev/shm";
  char* o = out;
  char* end = out + cap - 1;
  for (const char* p = dir; *p && o < end; ++p) *o++ = *p;
  for (const char* p = "/" FS_PROBE_PREFIX; *p && o < end; ++p) *o++ = *p;
  o = append_u64(o, end, (uint64_t)pid);
  if (o < end) *o++ = '-';
  o = append_u64(o, end, start);
  if (o < end) *o++ = '-';
  o = append_u64(o, end, pidns);
  if (o >= end) return 0;
  *o = '\0';
  return 1;
}

/* Field 22 of /proc/self/stat, the start time in clock ticks after boot; 0 when unreadable.
 * Fields are counted from the last ')', as the command name may hold spaces and parentheses. */
static uint64_t read_start_time(void) {
  char buf[1024];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  /* The real read: the wrapper would count this one into the segment being replaced. */
  ssize_t n = r_read ? r_read(fd, buf, sizeof buf) : -1;
  close(fd);
  if (n <= 0) return 0;
  const char* end = buf + n;
  const char* p = NULL;
  for (const char* q = buf; q < end; ++q) if (*q == ')') p = q;
  if (!p) return 0;
  for (int field = 2; field < 22; ++field) { /* p at the space before field + 1 */
    p = memchr(p, ' ', (size_t)(end - p));
    if (!p) return 0;
    ++p;
  }
  uint64_t v = 0;
  for (; p < end && *p >= '0' && *p <= '9'; ++p) v = v * 10 + (uint64_t)(*p - '0');
  return v;
}

static uint64_t read_pidns(void) {
  struct stat st;
  return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* The attached segment's file, removed by the destructor; empty when counting privately. */
static char g_path[512];

static struct fs_probe_segment* attach_segment(int fresh) {
  g_path[0] = '\0';
  const pid_t pid = getpid();
  const uint64_t start = read_start_time(), pidns = read_pidns();
  /* Without them no agent could tell this process's segment from others': it would only leak. */
  if (start == 0 || pidns == 0) return &g_fallback;
  char path[sizeof g_path];
  if (!segment_path(path, sizeof path, pid, start, pidns)) return &g_fallback;
  /* fresh (after fork): the name is new, so a file under it was planted. Otherwise an earlier
   * image of this process (before exec) may have left it; a link or another user's file (whose
   * owner could truncate it under the mapping: SIGBUS) is never used. */
  int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (fresh ? O_EXCL : 0), 0600);
  if (fd < 0) return &g_fallback;
  struct stat st;
  int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
           (st.st_size == (off_t)sizeof(struct fs_probe_segment) ||
            ftruncate(fd, sizeof(struct fs_probe_segment)) == 0);
  void* p = ok ? mmap(NULL, sizeof(struct fs_probe_segment), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
               : MAP_FAILED;
  close(fd);
  if (p == MAP_FAILED) return &g_fallback;
  struct fs_probe_segment* s = (struct fs_probe_segment*)p;
  if (s->magic != FS_PROBE_MAGIC || s->version != FS_PROBE_VERSION || s->pid != pid ||
      s->start != start || s->pidns != pidns) {
    /* New (zero-filled) or not this process's: start over. */
    memset(s, 0, sizeof *s);
    s->version = FS_PROBE_VERSION;
    s->classes = FS_PROBE_CLASSES;
    s->pid = pid;
    s->start = start;
    s->pidns = pidns;
    atomic_store((_Atomic uint64_t*)&s->magic, FS_PROBE_MAGIC);
  }
  atomic_fetch_add((_Atomic uint32_t*)&s->execs, 1);
  memcpy(g_path, path, sizeof path);
  return s;
}

/* The host program's errno is left as it was: attaching runs before its call or in its fork. */
static struct fs_probe_segment* attach(int fresh) {
  const int saved = errno;
  struct fs_probe_segment* s = attach_segment(fresh);
  errno = saved;
  return s;
}

static void after_fork_child(void) {
  /* The child must not count into the parent's segment. */
  struct fs_probe_segment* s = attach(1);
  atomic_store(&g_seg, s);
}

static void init(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&g_init_state, &expected, 1)) {
    /* Another thread is initialising: wait (only at start-up). */
    while (atomic_load(&g_init_state) != 2) { }
    return;
  }
  resolve_all();
  atomic_store(&g_seg, attach(0));
  pthread_atfork(NULL, NULL, after_fork_child);
  atomic_store(&g_init_state, 2);
}

__attribute__((constructor)) static void probe_constructor(void) { init(); }

__attribute__((destructor)) static void probe_destructor(void) {
  /* Without an agent nobody reads the segment: remove it unless asked to keep it. */
  const char* keep = getenv("FORESIGHT_PROBE_KEEP");
  if (keep && *keep == '1') return;
  if (g_path[0]) unlink(g_path);
}

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void record(int cls, uint64_t ns, int failed, uint64_t bytes) {
  struct fs_probe_segment* s = atomic_load_explicit(&g_seg, memory_order_acquire);
  if (!s) s = &g_fallback;
  struct fs_probe_counters* c = &s->c[cls];
  atomic_fetch_add_explicit((_Atomic uint64_t*)&c->calls, 1, memory_order_relaxed);
  if (failed) atomic_fetch_add_explicit((_Atomic uint64_t*)&c->errors, 1, memory_order_relaxed);
  else if (bytes > 0)
    atomic_fetch_add_explicit((_Atomic uint64_t*)&c->bytes, bytes, memory_order_relaxed);
  atomic_fetch_add_explicit((_Atomic uint64_t*)&c->total_ns, ns, memory_order_relaxed);
  int b = ns == 0 ? 0 : 64 - __builtin_clzll(ns);
  if (b >= FS_PROBE_BUCKETS) b = FS_PROBE_BUCKETS - 1;
  atomic_fetch_add_explicit((_Atomic uint64_t*)&c->hist[b], 1, memory_order_relaxed);
}

/* Bytes of the first n messages of an mmsg call (its result: messages sent or received). */
static inline uint64_t mmsg_bytes(const struct mmsghdr* v, int n) {
  uint64_t sum = 0;
  for (int i = 0; i < n; ++i) sum += v[i].msg_len;
  return sum;
}

#define ENSURE(name) \
  do { if (__builtin_expect(r_##name == NULL, 0)) init(); } while (0)

/* Wraps one call: time it, count it in class cls (and cls2 unless -1: a copy between two
 * descriptors is a read and a write) with `moved` bytes (an expression of its result rv), keep
 * the callee's errno. A function this libc lacks fails with ENOSYS, as a missing syscall would,
 * rather than calling NULL. */
#define WRAP_AS(cls, cls2, moved, name, ...)                                  \
  ENSURE(name);                                                               \
  if (__builtin_expect(r_##name == NULL, 0)) { errno = ENOSYS; return -1; }   \
  uint64_t t0 = now_ns();                                                     \
  __typeof__(r_##name(__VA_ARGS__)) rv = r_##name(__VA_ARGS__);               \
  int saved = errno;                                                          \
  uint64_t ns = now_ns() - t0;                                                \
  record(cls, ns, rv < 0, rv > 0 ? (uint64_t)(moved) : 0);                    \
  if ((cls2) >= 0) record(cls2, ns, rv < 0, rv > 0 ? (uint64_t)(moved) : 0);  \
  errno = saved;                                                              \
  return rv

#define WRAP(cls, bytes, name, ...) WRAP_AS(cls, -1, (bytes) ? rv : 0, name, __VA_ARGS__)
#define WRAP_COPY(name, ...) WRAP_AS(FS_PROBE_READ, FS_PROBE_WRITE, rv, name, __VA_ARGS__)

EXPORT ssize_t read(int fd, void* b, size_t n) { WRAP(FS_PROBE_READ, 1, read, fd, b, n); }
EXPORT ssize_t write(int fd, const void* b, size_t n) { WRAP(FS_PROBE_WRITE, 1, write, fd, b, n); }
EXPORT ssize_t pread(int fd, void* b, size_t n, off_t o) { WRAP(FS_PROBE_READ, 1, pread, fd, b, n, o); }
EXPORT ssize_t pwrite(int fd, const void* b, size_t n, off_t o) { WRAP(FS_PROBE_WRITE, 1, pwrite, fd, b, n, o); }
EXPORT ssize_t pread64(int fd, void* b, size_t n, off64_t o) { WRAP(FS_PROBE_READ, 1, pread64, fd, b, n, o); }
EXPORT ssize_t pwrite64(int fd, const void* b, size_t n, off64_t o) { WRAP(FS_PROBE_WRITE, 1, pwrite64, fd, b, n, o); }
EXPORT ssize_t readv(int fd, const struct iovec* v, int n) { WRAP(FS_PROBE_READ, 1, readv, fd, v, n); }
EXPORT ssize_t writev(int fd, const struct iovec* v, int n) { WRAP(FS_PROBE_WRITE, 1, writev, fd, v, n); }
EXPORT ssize_t preadv(int fd, const struct iovec* v, int n, off_t o) { WRAP(FS_PROBE_READ, 1, preadv, fd, v, n, o); }
EXPORT ssize_t pwritev(int fd, const struct iovec* v, int n, off_t o) { WRAP(FS_PROBE_WRITE, 1, pwritev, fd, v, n, o); }
/* Where _FILE_OFFSET_BITS=64 builds (libuv, so node) and the glibc headers' aliases lead. */
EXPORT ssize_t preadv64(int fd, const struct iovec* v, int n, off64_t o) { WRAP(FS_PROBE_READ, 1, preadv64, fd, v, n, o); }
EXPORT ssize_t pwritev64(int fd, const struct iovec* v, int n, off64_t o) { WRAP(FS_PROBE_WRITE, 1, pwritev64, fd, v, n, o); }
EXPORT ssize_t preadv2(int fd, const struct iovec* v, int n, off_t o, int f) { WRAP(FS_PROBE_READ, 1, preadv2, fd, v, n, o, f); }
EXPORT ssize_t pwritev2(int fd, const struct iovec* v, int n, off_t o, int f) { WRAP(FS_PROBE_WRITE, 1, pwritev2, fd, v, n, o, f); }
EXPORT ssize_t preadv64v2(int fd, const struct iovec* v, int n, off64_t o, int f) {
  WRAP(FS_PROBE_READ, 1, preadv64v2, fd, v, n, o, f);
}
EXPORT ssize_t pwritev64v2(int fd, const struct iovec* v, int n, off64_t o, int f) {
  WRAP(FS_PROBE_WRITE, 1, pwritev64v2, fd, v, n, o, f);
}
/* _FORTIFY_SOURCE builds call these instead of read, pread and recv(from); glibc checks the
 * buffer size and then reads through its internal names, which no interposer sees. */
EXPORT ssize_t __read_chk(int fd, void* b, size_t n, size_t cap) { WRAP(FS_PROBE_READ, 1, __read_chk, fd, b, n, cap); }
EXPORT ssize_t __pread_chk(int fd, void* b, size_t n, off_t o, size_t cap) {
  WRAP(FS_PROBE_READ, 1, __pread_chk, fd, b, n, o, cap);
}
EXPORT ssize_t __pread64_chk(int fd, void* b, size_t n, off64_t o, size_t cap) {
  WRAP(FS_PROBE_READ, 1, __pread64_chk, fd, b, n, o, cap);
}
EXPORT ssize_t __recv_chk(int fd, void* b, size_t n, size_t cap, int f) {
  WRAP(FS_PROBE_RECV, 1, __recv_chk, fd, b, n, cap, f);
}
EXPORT ssize_t __recvfrom_chk(int fd, void* b, size_t n, size_t cap, int f, struct sockaddr* a, socklen_t* l) {
  WRAP(FS_PROBE_RECV, 1, __recvfrom_chk, fd, b, n, cap, f, a, l);
}
/* Copies inside the kernel (cat and cp use copy_file_range, Python's shutil sendfile). */
EXPORT ssize_t copy_file_range(int in, off64_t* io, int out, off64_t* oo, size_t n, unsigned int f) {
  WRAP_COPY(copy_file_range, in, io, out, oo, n, f);
}
EXPORT ssize_t sendfile(int out, int in, off_t* o, size_t n) { WRAP_COPY(sendfile, out, in, o, n); }
EXPORT ssize_t sendfile64(int out, int in, off64_t* o, size_t n) { WRAP_COPY(sendfile64, out, in, o, n); }
EXPORT ssize_t splice(int in, off64_t* io, int out, off64_t* oo, size_t n, unsigned int f) {
  WRAP_COPY(splice, in, io, out, oo, n, f);
}
EXPORT ssize_t send(int fd, const void* b, size_t n, int f) { WRAP(FS_PROBE_SEND, 1, send, fd, b, n, f); }
EXPORT ssize_t sendto(int fd, const void* b, size_t n, int f, const struct sockaddr* a, socklen_t l) {
  WRAP(FS_PROBE_SEND, 1, sendto, fd, b, n, f, a, l);
}
EXPORT ssize_t sendmsg(int fd, const struct msghdr* m, int f) { WRAP(FS_PROBE_SEND, 1, sendmsg, fd, m, f); }
EXPORT int sendmmsg(int fd, struct mmsghdr* v, unsigned int n, int f) {
  WRAP_AS(FS_PROBE_SEND, -1, mmsg_bytes(v, rv), sendmmsg, fd, v, n, f);
}
EXPORT ssize_t recv(int fd, void* b, size_t n, int f) { WRAP(FS_PROBE_RECV, 1, recv, fd, b, n, f); }
EXPORT ssize_t recvfrom(int fd, void* b, size_t n, int f, struct sockaddr* a, socklen_t* l) {
  WRAP(FS_PROBE_RECV, 1, recvfrom, fd, b, n, f, a, l);
}
EXPORT ssize_t recvmsg(int fd, struct msghdr* m, int f) { WRAP(FS_PROBE_RECV, 1, recvmsg, fd, m, f); }
EXPORT int recvmmsg(int fd, struct mmsghdr* v, unsigned int n, int f, struct timespec* t) {
  WRAP_AS(FS_PROBE_RECV, -1, mmsg_bytes(v, rv), recvmmsg, fd, v, n, f, t);
}
EXPORT int fsync(int fd) { WRAP(FS_PROBE_FSYNC, 0, fsync, fd); }
EXPORT int fdatasync(int fd) { WRAP(FS_PROBE_FSYNC, 0, fdatasync, fd); }
EXPORT int connect(int fd, const struct sockaddr* a, socklen_t l) { WRAP(FS_PROBE_CONNECT, 0, connect, fd, a, l); }
EXPORT int accept(int fd, struct sockaddr* a, socklen_t* l) { WRAP(FS_PROBE_ACCEPT, 0, accept, fd, a, l); }
EXPORT int accept4(int fd, struct sockaddr* a, socklen_t* l, int f) { WRAP(FS_PROBE_ACCEPT, 0, accept4, fd, a, l, f); }
EXPORT int pipe(int p[2]) { WRAP(FS_PROBE_PIPE, 0, pipe, p); }
EXPORT int pipe2(int p[2], int f) { WRAP(FS_PROBE_PIPE, 0, pipe2, p, f); }
EXPORT int socket(int d, int t, int p) { WRAP(FS_PROBE_SOCKET, 0, socket, d, t, p); }
EXPORT int socketpair(int d, int t, int p, int sv[2]) { WRAP(FS_PROBE_SOCKET, 0, socketpair, d, t, p, sv); }
