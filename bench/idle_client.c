// Copyright 2026 the denio authors. MIT license.
//
// The load client of the scale case: many idle connections to one echo
// server, its RSS per idle connection and its accept rate as they pile up.
// One thread, one epoll loop. Compiled by bench/run.ts with `cc -O2`.
//
//   idle_client PORT SERVER_PID LEVELS PROBES
//
// LEVELS is a comma-separated list of connection counts, ascending (e.g.
// 1000,19900). For each level it opens idle connections until that many are
// connected (256 at a time, each batch accepted before the next: see
// open_idle), waits until the server has accepted them all (a probe echo
// behind them in the accept queue comes back), samples the server's VmRSS
// from /proc/SERVER_PID/status, then measures the accept rate: PROBES more
// connections, 64 at a time, each connecting, echoing 64 bytes and closing
// (with a reset, so no TIME_WAIT is left); rate = PROBES / elapsed, and
// the server's CPU time per probe (cpuPerAccept, µs, all its threads from
// /proc/SERVER_PID/task/*/schedstat). At the
// end every idle connection sends 1 KiB and waits for its echo; connections
// that fail or do not answer within 30 s count as lost. Source addresses
// rotate over 127.0.0.1-127.0.0.200 so that ephemeral ports never run out.
// Prints one JSON line:
//   {"rss0":B,"levels":[{"n":N,"rss":B,"kibPerConn":K,"acceptRate":R},...],
//    "echoed":E,"lost":L}   (each level also has "cpuPerAccept")
// Exit status 0 on success, 1 on a setup error. IDLE_CLIENT_TRACE=1 prints
// each phase's duration on stderr.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { CONNECTING, IDLE, PROBE_SENT, ECHO_SENT, DONE, FAILED };

struct conn {
  int fd;
  enum state state;
  size_t got;
};

static int ep;
static struct sockaddr_in server;
static unsigned source_counter;
static unsigned char message[1024];
static unsigned char scratch[65536];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "idle_client: %s: %s\n", what, strerror(errno));
  exit(1);
}

static long server_rss(int pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) die("open /proc/PID/status");
  long kib = -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) kib = atol(line + 6);
  }
  fclose(f);
  return kib * 1024;
}

// CPU seconds the server has used, all threads (ns resolution).
static double server_cpu(int pid) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%d/task", pid);
  DIR *dir = opendir(path);
  if (!dir) die("open /proc/PID/task");
  double total = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char stat[300];
    snprintf(stat, sizeof stat, "/proc/%d/task/%s/schedstat", pid, e->d_name);
    FILE *f = fopen(stat, "r");
    if (!f) continue;
    unsigned long long ns = 0;
    if (fscanf(f, "%llu", &ns) == 1) total += ns / 1e9;
    fclose(f);
  }
  closedir(dir);
  return total;
}

// Starts a non-blocking connect from the next source address.
static void start_connect(struct conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) die("socket");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in source = {.sin_family = AF_INET};
  source.sin_addr.s_addr = htonl(0x7f000001 + (source_counter++ % 200));
  if (bind(c->fd, (struct sockaddr *)&source, sizeof source) < 0) {
    die("bind");
  }
  if (connect(c->fd, (struct sockaddr *)&server, sizeof server) < 0 &&
      errno != EINPROGRESS) {
    die("connect");
  }
  c->state = CONNECTING;
  c->got = 0;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void watch_in(struct conn *c) {
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void reset_close(struct conn *c) {
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(c->fd);
  c->fd = -1;
}

static int connected_ok(struct conn *c) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err == 0;
}

// Sends `size` bytes of the message at once (small: fits the socket buffer).
static int send_message(struct conn *c, size_t size) {
  return write(c->fd, message, size) == (ssize_t)size ? 0 : -1;
}

// Reads what is there; returns 1 once `size` bytes arrived, -1 on failure.
static int read_echo(struct conn *c, size_t size) {
  for (;;) {
    ssize_t n = read(c->fd, scratch, sizeof scratch);
    if (n < 0 && errno == EAGAIN) return 0;
    if (n <= 0) return -1;
    c->got += (size_t)n;
    if (c->got >= size) return 1;
  }
}

static struct conn *idle;
static int idle_count;

static double probe(int probes, int window);

// Opens idle connections until `target` are connected (client side), 256 at
// a time: after each batch a probe echo behind them confirms that the server
// has accepted them all (the accept queue is FIFO), so the queue never holds
// more than a batch. (Opened as fast as the handshakes completed, they
// overflowed the backlog of a server that accepted slower than that, 511 for
// Deno's listeners, and each dropped SYN waited a 1 s retransmit: 19,500
// connections took 27 s to open against the raw Deno loop, 0.4 s against
// the native backend.)
static void open_idle(int target) {
  int pending = 0;
  int first = idle_count;
  int next = idle_count;
  struct epoll_event events[256];
  while (idle_count < target) {
    if (pending == 0) {
      // The batch is connected (none is in the epoll set any more).
      if (next > first) probe(1, 1);
      while (pending < 256 && next < target) {
        start_connect(&idle[next++]);
        pending++;
      }
    }
    int n = epoll_wait(ep, events, 256, 1000);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      struct conn *c = events[i].data.ptr;
      if (c->state != CONNECTING) continue;
      pending--;
      if (!connected_ok(c)) {
        errno = ECONNREFUSED;
        die("connect (idle)");
      }
      c->state = IDLE;
      epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
      idle_count++;
    }
  }
}

// PROBES connections, `window` at a time: connect, echo 64 B, reset.
// Returns the rate (connections per second).
static double probe(int probes, int window) {
  struct conn *slots = calloc((size_t)window, sizeof *slots);
  int started = 0, done = 0, active = 0;
  double t0 = now();
  struct epoll_event events[256];
  for (int i = 0; i < window && started < probes; i++) {
    start_connect(&slots[i]);
    started++;
    active++;
  }
  while (done < probes) {
    int n = epoll_wait(ep, events, 256, 5000);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    if (n == 0) {
      fprintf(stderr, "idle_client: probe stalled (%d of %d)\n", done,
              probes);
      exit(1);
    }
    for (int i = 0; i < n; i++) {
      struct conn *c = events[i].data.ptr;
      if (c->state == CONNECTING) {
        if (!connected_ok(c) || send_message(c, 64) < 0) {
          errno = ECONNREFUSED;
          die("probe connect");
        }
        c->state = PROBE_SENT;
        watch_in(c);
        continue;
      }
      int r = read_echo(c, 64);
      if (r == 0) continue;
      if (r < 0) die("probe echo");
      reset_close(c);
      done++;
      active--;
      if (started < probes) {
        start_connect(c);
        started++;
        active++;
      }
    }
  }
  double elapsed = now() - t0;
  free(slots);
  return probes / elapsed;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: idle_client PORT SERVER_PID LEVELS PROBES\n");
    return 1;
  }
  int port = atoi(argv[1]);
  int pid = atoi(argv[2]);
  int probes = atoi(argv[4]);
  int levels[16], nlevels = 0;
  for (char *p = strtok(argv[3], ","); p && nlevels < 16;
       p = strtok(NULL, ",")) {
    levels[nlevels++] = atoi(p);
  }
  if (port <= 0 || pid <= 0 || probes <= 0 || nlevels == 0) {
    fprintf(stderr, "idle_client: bad arguments\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  server.sin_family = AF_INET;
  server.sin_port = htons((uint16_t)port);
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (size_t i = 0; i < sizeof message; i++) message[i] = 'a' + i % 26;
  ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  idle = calloc((size_t)levels[nlevels - 1], sizeof *idle);

  // IDLE_CLIENT_TRACE=1: each phase's duration on stderr.
  int trace = getenv("IDLE_CLIENT_TRACE") != NULL;
  double mark = now();
#define PHASE(name)                                                       \
  do {                                                                    \
    if (trace) fprintf(stderr, "idle_client: %s %.2f s\n", name, now() - mark); \
    mark = now();                                                         \
  } while (0)
  // One echo first, so the server's baseline RSS includes a warm path.
  probe(16, 1);
  usleep(200000);
  long rss0 = server_rss(pid);
  printf("{\"rss0\":%ld,\"levels\":[", rss0);
  for (int l = 0; l < nlevels; l++) {
    open_idle(levels[l]);
    PHASE("open idle");
    // A probe queued behind the idle connections: once it is echoed, the
    // server has accepted every one of them (the accept queue is FIFO).
    probe(1, 1);
    PHASE("all accepted");
    usleep(300000);
    long rss = server_rss(pid);
    double cpu0 = server_cpu(pid);
    double rate = probe(probes, 64);
    double cpu = server_cpu(pid) - cpu0;
    PHASE("probes");
    printf("%s{\"n\":%d,\"rss\":%ld,\"kibPerConn\":%.2f,\"acceptRate\":%.1f,"
           "\"cpuPerAccept\":%.2f}",
           l ? "," : "", idle_count, rss,
           (rss - rss0) / 1024.0 / idle_count, rate, cpu / probes * 1e6);
  }
  // One 1 KiB echo on every idle connection.
  for (int i = 0; i < idle_count; i++) {
    struct conn *c = &idle[i];
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    if (send_message(c, sizeof message) < 0) c->state = FAILED;
    else c->state = ECHO_SENT;
  }
  int echoed = 0, lost = 0;
  for (int i = 0; i < idle_count; i++) lost += idle[i].state == FAILED;
  double deadline = now() + 30;
  struct epoll_event events[256];
  while (echoed + lost < idle_count && now() < deadline) {
    int n = epoll_wait(ep, events, 256, 1000);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      struct conn *c = events[i].data.ptr;
      if (c->state != ECHO_SENT) continue;
      int r = read_echo(c, sizeof message);
      if (r == 0) continue;
      if (r > 0 && c->got == sizeof message) {
        c->state = DONE;
        echoed++;
      } else {
        c->state = FAILED;
        lost++;
      }
      epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    }
  }
  lost = idle_count - echoed;
  PHASE("echo on every idle connection");
  printf("],\"echoed\":%d,\"lost\":%d}\n", echoed, lost);
  fflush(stdout);
  for (int i = 0; i < idle_count; i++) reset_close(&idle[i]);
  PHASE("close");
  return 0;
}
