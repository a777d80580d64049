/* Program with known I/O for the probe test. Phase "main": file, pipe, socket and fsync calls,
 * then a fork whose child writes 5 times, then exec of itself in phase "after-exec" which writes
 * 7 times. Mode "hold": writes 3 times, forks a child that writes 5 times, each then writes one
 * line "<P|C> <pid>\n" to stdout, closes it and reads stdin until that closes. Mode "more-calls
 * FILE": one call of each entry point beyond the read and write family, bytes in the test. Uses
 * raw syscall wrappers only (no stdio), so the counts are exact. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* "<tag> <pid>\n" in one write. */
static int say(char tag) {
  char line[32], digits[16];
  int n = 0, d = 0;
  line[n++] = tag;
  line[n++] = ' ';
  for (unsigned v = (unsigned)getpid(); v; v /= 10) digits[d++] = (char)('0' + v % 10);
  while (d > 0) line[n++] = digits[--d];
  line[n++] = '\n';
  return write(1, line, (size_t)n) == n ? 0 : 1;
}

static void wait_for_eof(void) {
  char c;
  while (read(0, &c, 1) > 0) { }
}

static int hold(int devnull, const char* buf) {
  pid_t child = fork();
  if (child == 0) {
    for (int i = 0; i < 5; ++i) if (write(devnull, buf, 3) != 3) _exit(1);
    if (say('C') != 0) _exit(1);
    close(1); /* tells the test that the calls above are counted */
    wait_for_eof();
    _exit(0);
  }
  for (int i = 0; i < 3; ++i) if (write(devnull, buf, 10) != 10) return 1;
  if (say('P') != 0) return 1;
  close(1);
  wait_for_eof();
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* glibc's checked entry points, which its headers declare only under _FORTIFY_SOURCE (where
 * read, pread and recv(from) calls on buffers of known size become these). */
extern ssize_t __read_chk(int, void*, size_t, size_t);
extern ssize_t __pread_chk(int, void*, size_t, off_t, size_t);
extern ssize_t __pread64_chk(int, void*, size_t, off64_t, size_t);
extern ssize_t __recv_chk(int, void*, size_t, size_t, int);
extern ssize_t __recvfrom_chk(int, void*, size_t, size_t, int, struct sockaddr*, socklen_t*);

static int more_calls(const char* path, char* buf, size_t cap) {
  char out_path[512];
  strcpy(out_path, path);
  strcat(out_path, ".out");
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  int out = open(out_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || out < 0) return 20;
  struct iovec v = {buf, 100};
  if (pwritev64(fd, &v, 1, 0) != 100 || pwritev2(fd, &v, 1, 100, 0) != 100 ||
      pwritev64v2(fd, &v, 1, 200, 0) != 100)
    return 21;
  if (preadv64(fd, &v, 1, 0) != 100 || preadv2(fd, &v, 1, 0, 0) != 100 ||
      preadv64v2(fd, &v, 1, 0, 0) != 100)
    return 22;
  if (__read_chk(fd, buf, 50, cap) != 50 || __pread_chk(fd, buf, 40, 0, cap) != 40 ||
      __pread64_chk(fd, buf, 30, 0, cap) != 30)
    return 23;
  off64_t from = 0;
  if (copy_file_range(fd, &from, out, NULL, 300, 0) != 300) return 24;
  off_t o = 0;
  off64_t o64 = 0;
  if (sendfile(out, fd, &o, 200) != 200 || sendfile64(out, fd, &o64, 100) != 100) return 25;
  int p[2];
  off64_t so = 0;
  if (pipe(p) != 0 || splice(fd, &so, p[1], NULL, 64, 0) != 64 ||
      splice(p[0], NULL, out, NULL, 64, 0) != 64)
    return 26;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0) return 27;
  struct iovec parts[4] = {{buf, 10}, {buf, 20}, {buf, 5}, {buf, 7}};
  struct mmsghdr m[4];
  memset(m, 0, sizeof m);
  for (int i = 0; i < 4; ++i) {
    m[i].msg_hdr.msg_iov = &parts[i];
    m[i].msg_hdr.msg_iovlen = 1;
  }
  if (sendmmsg(sv[0], m, 4, 0) != 4) return 28;
  struct iovec room[2] = {{buf, 100}, {buf + 100, 100}};
  struct mmsghdr r[2];
  memset(r, 0, sizeof r);
  for (int i = 0; i < 2; ++i) {
    r[i].msg_hdr.msg_iov = &room[i];
    r[i].msg_hdr.msg_iovlen = 1;
  }
  if (recvmmsg(sv[1], r, 2, 0, NULL) != 2 || r[0].msg_len + r[1].msg_len != 30) return 29;
  if (__recv_chk(sv[1], buf, 100, cap, 0) != 5) return 30;
  if (__recvfrom_chk(sv[1], buf, 100, cap, 0, NULL, NULL) != 7) return 31;
  unlink(out_path);
  unlink(path);
  return 0;
}

int main(int argc, char** argv) {
  int devnull = open("/dev/null", O_WRONLY);
  char buf[4096];
  memset(buf, 'x', sizeof buf);
  if (argc == 2 && strcmp(argv[1], "hold") == 0) return hold(devnull, buf);
  if (argc == 3 && strcmp(argv[1], "more-calls") == 0) return more_calls(argv[2], buf, sizeof buf);
  if (argc > 2 && strcmp(argv[1], "after-exec") == 0) {
    for (int i = 0; i < 7; ++i) if (write(devnull, buf, 10) != 10) return 1;
    return 0;
  }
  if (argc < 2) return 2;
  int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
  for (int i = 0; i < 100; ++i) if (write(fd, buf, 4096) != 4096) return 3;
  for (int i = 0; i < 10; ++i) fsync(fd);
  lseek(fd, 0, SEEK_SET);
  for (int i = 0; i < 50; ++i) if (read(fd, buf, 1000) != 1000) return 4;
  close(fd);
  unlink(argv[1]);
  int p[2];
  if (pipe(p) != 0) return 5;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 6;
  for (int i = 0; i < 20; ++i) {
    if (send(sv[0], buf, 64, 0) != 64) return 7;
    if (recv(sv[1], buf, 64, 0) != 64) return 8;
  }
  /* A refused connection: one connect call, one error. Port 1 on loopback is not listening. */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(1);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, (struct sockaddr*)&a, sizeof a) == 0) return 9;
  pid_t child = fork();
  if (child == 0) {
    for (int i = 0; i < 5; ++i) if (write(devnull, buf, 3) != 3) _exit(1);
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 10;
  char pidtext[16];
  int n = 0;
  for (unsigned v = (unsigned)child; v; v /= 10) pidtext[n++] = (char)('0' + v % 10);
  char childpid[16];
  for (int i = 0; i < n; ++i) childpid[i] = pidtext[n - 1 - i];
  childpid[n] = 0;
  /* Tell the test the child's pid through a file, then exec into phase 2. */
  char path[512];
  strcpy(path, argv[1]);
  strcat(path, ".child");
  int cf = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (write(cf, childpid, (size_t)n) != n) return 11;
  close(cf);
  char* args[] = {argv[0], "after-exec", "x", NULL};
  execv("/proc/self/exe", args);
  return 12;
}
