/*
 * fdpass.c: the C baseline of the fd-passing benchmark. Plain blocking
 * sendmsg/recvmsg on an AF_UNIX stream socket, with the package's framing:
 * one message = N descriptors in one SCM_RIGHTS + N records of
 * `uint32 LE length` + meta bytes. Each mode is one process; bench/run.ts
 * starts two of them on different cores and reads the JSON line printed on
 * stdout, with the CPU time (user + system, getrusage(2)) the process spent
 * per descriptor (per round trip when pinging) over what it measured.
 *
 *   fdpass send PATH FDS_PER_MSG WARMUP_MS DURATION_MS META  listen, send, close
 *   fdpass recv PATH WARMUP_MS                              connect, count, close fds
 *   fdpass ping PATH WARMUP_MS DURATION_MS META             listen, time round trips
 *   fdpass pong PATH META                                   connect, answer each fd
 *
 * Build: cc -O2 -o fdpass fdpass.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 253
#define MAX_SAMPLES (1 << 21)

static void die(const char *what) {
  perror(what);
  exit(1);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static socklen_t address(const char *path, struct sockaddr_un *addr) {
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(addr->sun_path)) {
    fprintf(stderr, "socket path too long: %s\n", path);
    exit(1);
  }
  strcpy(addr->sun_path, path);
  return (socklen_t)sizeof(*addr);
}

/* listen_accept binds PATH, waits for one peer and returns its socket. */
static int listen_accept(const char *path) {
  struct sockaddr_un addr;
  socklen_t len = address(path, &addr);
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l < 0) die("socket");
  unlink(path);
  if (bind(l, (struct sockaddr *)&addr, len) < 0) die("bind");
  if (listen(l, 1) < 0) die("listen");
  int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  if (s < 0) die("accept");
  close(l);
  unlink(path);
  return s;
}

/* connect_retry connects to PATH, retrying for 10 s while nobody listens yet. */
static int connect_retry(const char *path) {
  struct sockaddr_un addr;
  socklen_t len = address(path, &addr);
  for (int i = 0; i < 10000; i++) {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) die("socket");
    if (connect(s, (struct sockaddr *)&addr, len) == 0) return s;
    if (errno != ENOENT && errno != ECONNREFUSED) die("connect");
    close(s);
    usleep(1000);
  }
  fprintf(stderr, "connect: %s never listened\n", path);
  exit(1);
}

/* Sending: one message of n records, every record carrying the same meta. */
struct message {
  char data[MAX_FDS * 512];
  size_t len;
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  struct iovec iov;
};

static void message_init(struct message *m, const int *fds, int n, const char *meta) {
  uint32_t mlen = (uint32_t)strlen(meta);
  if (n < 1 || n > MAX_FDS || mlen > 508) {
    fprintf(stderr, "bad message shape\n");
    exit(1);
  }
  m->len = 0;
  for (int i = 0; i < n; i++) {
    unsigned char *p = (unsigned char *)m->data + m->len;
    p[0] = mlen & 0xff, p[1] = (mlen >> 8) & 0xff, p[2] = (mlen >> 16) & 0xff, p[3] = mlen >> 24;
    memcpy(p + 4, meta, mlen);
    m->len += 4 + mlen;
  }
  memset(&m->msg, 0, sizeof(m->msg));
  memset(&m->control, 0, sizeof(m->control));
  m->msg.msg_control = m->control.buf;
  m->msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
  struct cmsghdr *c = CMSG_FIRSTHDR(&m->msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * n);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
}

/* message_send writes the whole message; the descriptors go with the first byte. */
static void message_send(int s, struct message *m) {
  size_t off = 0;
  while (off < m->len) {
    m->iov.iov_base = m->data + off;
    m->iov.iov_len = m->len - off;
    m->msg.msg_iov = &m->iov;
    m->msg.msg_iovlen = 1;
    struct msghdr msg = m->msg;
    if (off > 0) msg.msg_control = NULL, msg.msg_controllen = 0;
    ssize_t n = sendmsg(s, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("sendmsg");
    }
    off += (size_t)n;
  }
}

/* Receiving: a stream decoder pairing the i-th record with the i-th descriptor. */
struct reader {
  char buf[1 << 16];
  size_t start, end;
  int fds[4 * MAX_FDS];
  int fd_head, fd_count;
};

/* reader_next returns the next record's descriptor, or -1 at end of stream. */
static int reader_next(int s, struct reader *r) {
  for (;;) {
    size_t have = r->end - r->start;
    if (have >= 4) {
      const unsigned char *p = (const unsigned char *)r->buf + r->start;
      uint32_t mlen = p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
      if (have >= 4 + mlen) {
        if (r->fd_count == 0) {
          fprintf(stderr, "a record without a descriptor\n");
          exit(1);
        }
        r->start += 4 + mlen;
        r->fd_count--;
        return r->fds[r->fd_head++];
      }
    }
    if (r->start > 0) {
      memmove(r->buf, r->buf + r->start, r->end - r->start);
      r->end -= r->start;
      r->start = 0;
    }
    if (r->fd_head > 0) {
      memmove(r->fds, r->fds + r->fd_head, sizeof(int) * r->fd_count);
      r->fd_head = 0;
    }
    union {
      char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
      struct cmsghdr align;
    } control;
    struct iovec iov = {r->buf + r->end, sizeof(r->buf) - r->end};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    ssize_t n = recvmsg(s, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("recvmsg");
    }
    if (msg.msg_flags & MSG_CTRUNC) {
      fprintf(stderr, "recvmsg: descriptors dropped (MSG_CTRUNC)\n");
      exit(1);
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      if (r->fd_count + k > 4 * MAX_FDS) {
        fprintf(stderr, "too many descriptors queued\n");
        exit(1);
      }
      memcpy(r->fds + r->fd_count, CMSG_DATA(c), sizeof(int) * k);
      r->fd_count += k;
    }
    if (n == 0) return -1;
    r->end += (size_t)n;
  }
}

/* cpu_us: user + system CPU time of this process so far, in microseconds (getrusage(2)). */
static double cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static int open_null(void) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open /dev/null");
  return fd;
}

/* send: one fd (n = 1) or n distinct fds per message for warmup + duration. */
static int run_send(const char *path, int n, double warmup, double duration, const char *meta) {
  static struct message m;
  int fds[MAX_FDS];
  for (int i = 0; i < n; i++) fds[i] = open_null();
  message_init(&m, fds, n, meta);
  int s = listen_accept(path);
  double end = now_ms() + warmup + duration;
  double cpu0 = cpu_us();
  long messages = 0;
  do {
    for (int i = 0; i < 64; i++) message_send(s, &m);
    messages += 64;
  } while (now_ms() < end);
  double cpu = cpu_us() - cpu0;
  close(s);
  printf("{\"messages\":%ld,\"fds\":%ld,\"cpuUsPerFd\":%.4f}\n", messages, messages * n, cpu / (messages * n));
  return 0;
}

/* recv: counts descriptors from warmup after the first one until end of stream. */
static int run_recv(const char *path, double warmup) {
  static struct reader r;
  int s = connect_retry(path);
  double first = -1, t0 = 0, cpu0 = 0;
  long fds = 0, total = 0;
  int fd;
  while ((fd = reader_next(s, &r)) >= 0) {
    close(fd);
    total++;
    if (first < 0) first = now_ms();
    if (t0 > 0) {
      fds++;
    } else if (now_ms() - first >= warmup) {
      t0 = now_ms();
      cpu0 = cpu_us();
    }
  }
  double seconds = t0 > 0 ? (now_ms() - t0) / 1e3 : 0;
  double cpu = t0 > 0 ? cpu_us() - cpu0 : 0;
  close(s);
  printf("{\"fds\":%ld,\"seconds\":%.6f,\"fdsPerSecond\":%.1f,\"total\":%ld,\"cpuUsPerFd\":%.4f}\n", fds, seconds,
         seconds > 0 ? fds / seconds : 0, total, fds > 0 ? cpu / fds : 0);
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* ping: sends 1 fd + meta, waits for the reply fd, closes it; times each round trip. */
static int run_ping(const char *path, double warmup, double duration, const char *meta) {
  static struct message m;
  static struct reader r;
  double *samples = malloc(sizeof(double) * MAX_SAMPLES);
  if (!samples) die("malloc");
  int fd = open_null();
  message_init(&m, &fd, 1, meta);
  int s = listen_accept(path);
  double start = now_ms(), measure = start + warmup, end = measure + duration, cpu0 = -1;
  long count = 0;
  for (;;) {
    double t = now_ms();
    if (t >= end || count == MAX_SAMPLES) break;
    if (t >= measure && cpu0 < 0) cpu0 = cpu_us();
    message_send(s, &m);
    int got = reader_next(s, &r);
    if (got < 0) {
      fprintf(stderr, "ping: the peer closed\n");
      return 1;
    }
    close(got);
    double rtt = now_ms() - t;
    if (t >= measure) samples[count++] = rtt;
  }
  double cpu = cpu0 < 0 ? 0 : cpu_us() - cpu0;
  close(s);
  qsort(samples, (size_t)count, sizeof(double), cmp_double);
  long p99 = (long)((count * 99 + 99) / 100) - 1;
  printf("{\"roundTrips\":%ld,\"medianUs\":%.2f,\"p99Us\":%.2f,\"cpuUsPerRoundTrip\":%.3f}\n", count, samples[count / 2] * 1e3,
         samples[p99 < 0 ? 0 : p99] * 1e3, count > 0 ? cpu / count : 0);
  return 0;
}

/* pong: answers every descriptor received with one of its own, until end of stream. */
static int run_pong(const char *path, const char *meta) {
  static struct message m;
  static struct reader r;
  int fd = open_null();
  message_init(&m, &fd, 1, meta);
  int s = connect_retry(path);
  int got;
  while ((got = reader_next(s, &r)) >= 0) {
    close(got);
    message_send(s, &m);
  }
  close(s);
  printf("{}\n");
  return 0;
}

int main(int argc, char **argv) {
  /* Node raises its soft open-file limit to the hard one at startup; do the same. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "send") && argc == 7) {
    return run_send(argv[2], atoi(argv[3]), atof(argv[4]), atof(argv[5]), argv[6]);
  }
  if (!strcmp(mode, "recv") && argc == 4) return run_recv(argv[2], atof(argv[3]));
  if (!strcmp(mode, "ping") && argc == 6) return run_ping(argv[2], atof(argv[3]), atof(argv[4]), argv[5]);
  if (!strcmp(mode, "pong") && argc == 4) return run_pong(argv[2], argv[3]);
  fprintf(stderr,
          "usage: fdpass send PATH FDS_PER_MSG WARMUP_MS DURATION_MS META\n"
          "       fdpass recv PATH WARMUP_MS\n"
          "       fdpass ping PATH WARMUP_MS DURATION_MS META\n"
          "       fdpass pong PATH META\n");
  return 2;
}
