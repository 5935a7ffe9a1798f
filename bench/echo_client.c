// Copyright 2026 the denio authors. MIT license.
//
// The load client of the benchmark suite: one thread, one epoll loop, so that
// it is never the bottleneck of a JavaScript or Python server. Compiled by
// bench/run.ts with `cc -O2` (add -DWITH_TLS -lssl -lcrypto for the tls mode).
//
//   echo_client echo  PORT CONNS SIZE SECONDS WARMUP
//       CONNS TCP connections, each sending SIZE bytes and waiting for the
//       full echo before sending again. Counts round trips.
//   echo_client tls   PORT CONNS SIZE SECONDS WARMUP
//       The same over TLS (certificate not verified).
//   echo_client churn PORT CONNS SIZE SECONDS WARMUP
//       CONNS slots, each: connect, send SIZE bytes, read the echo, close.
//       Counts connections.
//   echo_client udp   PORT FLOWS SIZE SECONDS WARMUP
//       FLOWS UDP sockets, each sending one SIZE-byte datagram and waiting for
//       its echo (resent after 100 ms if lost). Counts echoed datagrams.
//
// Operations finished during WARMUP seconds are not counted; then it counts
// for SECONDS and prints one JSON line: {"ops":N,"seconds":S,"rate":R,...}
// ("allOps" counts the warm-up too).
// Exit status 0 on success, 1 on a setup error, 2 if no operation finished.

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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef WITH_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
static SSL_CTX *ssl_ctx;
#endif

enum mode { ECHO, TLS, CHURN, UDP };

struct slot {
  int fd;
  size_t sent;      // bytes of the current message written
  size_t received;  // bytes of its echo read
  int want_out;     // EPOLLOUT registered
  int connecting;   // churn: connect() in progress
  double sent_at;   // udp: when the datagram left
#ifdef WITH_TLS
  SSL *ssl;
#endif
};

static enum mode mode;
static struct sockaddr_in server;
static size_t size;
static unsigned char *message;
static unsigned char scratch[256 * 1024];
static int ep;
static long ops, all_ops, errors;
static int counting;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "echo_client: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void set_nonblocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void watch(struct slot *s, int op, int out) {
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0),
                           .data.ptr = s};
  if (epoll_ctl(ep, op, s->fd, &ev) < 0) die("epoll_ctl");
  s->want_out = out;
}

static void finished(void) {
  all_ops++;
  if (counting) ops++;
}

// ---------------------------------------------------------------- TCP / TLS

static int tcp_socket(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Writes what is left of the message; registers EPOLLOUT if the socket is full.
static int send_rest(struct slot *s) {
  while (s->sent < size) {
    ssize_t n;
#ifdef WITH_TLS
    if (s->ssl) {
      n = SSL_write(s->ssl, message + s->sent, (int)(size - s->sent));
      if (n <= 0) {
        int e = SSL_get_error(s->ssl, (int)n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
          if (!s->want_out) watch(s, EPOLL_CTL_MOD, 1);
          return 0;
        }
        return -1;
      }
    } else
#endif
    {
      n = write(s->fd, message + s->sent, size - s->sent);
      if (n < 0) {
        if (errno == EAGAIN) {
          if (!s->want_out) watch(s, EPOLL_CTL_MOD, 1);
          return 0;
        }
        return -1;
      }
    }
    s->sent += (size_t)n;
  }
  if (s->want_out) watch(s, EPOLL_CTL_MOD, 0);
  return 0;
}

static void open_slot(struct slot *s) {
  memset(s, 0, sizeof *s);
  s->fd = tcp_socket();
  set_nonblocking(s->fd);
  if (connect(s->fd, (struct sockaddr *)&server, sizeof server) < 0 &&
      errno != EINPROGRESS) {
    if (errno == EADDRNOTAVAIL) {
      fprintf(stderr,
              "echo_client: out of local ports (connections in TIME_WAIT); "
              "try sysctl net.ipv4.tcp_tw_reuse=1\n");
      exit(1);
    }
    die("connect");
  }
  s->connecting = 1;
  watch(s, EPOLL_CTL_ADD, 1);
}

static void churn_done(struct slot *s) {
  close(s->fd);  // also removes it from the epoll set
  finished();
  open_slot(s);
}

static void churn_failed(struct slot *s) {
  errors++;
  close(s->fd);
  open_slot(s);
}

static void on_stream_event(struct slot *s, uint32_t events) {
  if (s->connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      churn_failed(s);
      return;
    }
    s->connecting = 0;
    if (send_rest(s) < 0) churn_failed(s);
    return;
  }
  if ((events & EPOLLOUT) && s->sent < size) {
    if (send_rest(s) < 0) goto failed;
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  for (;;) {
    ssize_t n;
#ifdef WITH_TLS
    if (s->ssl) {
      n = SSL_read(s->ssl, scratch, sizeof scratch);
      if (n <= 0) {
        int e = SSL_get_error(s->ssl, (int)n);
        if (e == SSL_ERROR_WANT_READ) return;
        if (e == SSL_ERROR_WANT_WRITE) {
          if (!s->want_out) watch(s, EPOLL_CTL_MOD, 1);
          return;
        }
        goto failed;
      }
    } else
#endif
    {
      n = read(s->fd, scratch, sizeof scratch);
      if (n < 0 && errno == EAGAIN) return;
      if (n == 0) errno = 0;
      if (n <= 0) goto failed;
    }
    s->received += (size_t)n;
    if (s->received > size) goto failed;  // the server sent more than it got
    if (s->received == size) {
      if (mode == CHURN) {
        churn_done(s);
        return;
      }
      finished();
      s->sent = 0;
      s->received = 0;
      if (send_rest(s) < 0) goto failed;
    }
  }
failed:
  if (mode == CHURN) {
    churn_failed(s);
    return;
  }
  fprintf(stderr, "echo_client: connection lost (%s)\n",
          errno ? strerror(errno) : "closed by the server");
  exit(1);
}

static void open_stream(struct slot *s) {
  memset(s, 0, sizeof *s);
  s->fd = tcp_socket();
  if (connect(s->fd, (struct sockaddr *)&server, sizeof server) < 0) {
    die("connect");
  }
#ifdef WITH_TLS
  if (mode == TLS) {
    s->ssl = SSL_new(ssl_ctx);
    SSL_set_fd(s->ssl, s->fd);
    if (SSL_connect(s->ssl) != 1) {
      ERR_print_errors_fp(stderr);
      fprintf(stderr, "echo_client: TLS handshake failed\n");
      exit(1);
    }
  }
#endif
  set_nonblocking(s->fd);
  watch(s, EPOLL_CTL_ADD, 0);
}

// ---------------------------------------------------------------------- UDP

static void udp_send(struct slot *s) {
  s->sent_at = now();
  if (send(s->fd, message, size, 0) < 0 && errno != EAGAIN &&
      errno != ECONNREFUSED) {
    die("send");
  }
}

static void on_udp_event(struct slot *s) {
  for (;;) {
    ssize_t n = recv(s->fd, scratch, sizeof scratch, 0);
    if (n < 0) {
      if (errno == EAGAIN) return;
      if (errno == ECONNREFUSED) continue;
      die("recv");
    }
    if ((size_t)n == size) {
      finished();
      udp_send(s);
    }
  }
}

static void open_udp(struct slot *s) {
  memset(s, 0, sizeof *s);
  s->fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (s->fd < 0) die("socket");
  if (connect(s->fd, (struct sockaddr *)&server, sizeof server) < 0) {
    die("connect");
  }
  set_nonblocking(s->fd);
  watch(s, EPOLL_CTL_ADD, 0);
}

// ---------------------------------------------------------------------- main

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr,
            "usage: echo_client echo|tls|churn|udp PORT CONNS SIZE SECONDS "
            "WARMUP\n");
    return 1;
  }
  if (strcmp(argv[1], "echo") == 0) mode = ECHO;
  else if (strcmp(argv[1], "tls") == 0) mode = TLS;
  else if (strcmp(argv[1], "churn") == 0) mode = CHURN;
  else if (strcmp(argv[1], "udp") == 0) mode = UDP;
  else {
    fprintf(stderr, "echo_client: unknown mode %s\n", argv[1]);
    return 1;
  }
  int port = atoi(argv[2]);
  int conns = atoi(argv[3]);
  size = (size_t)atol(argv[4]);
  double seconds = atof(argv[5]);
  double warmup = atof(argv[6]);
  if (port <= 0 || conns <= 0 || size == 0 || seconds <= 0 || warmup < 0) {
    fprintf(stderr, "echo_client: bad arguments\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
#ifdef WITH_TLS
  if (mode == TLS) {
    ssl_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  }
#else
  if (mode == TLS) {
    fprintf(stderr, "echo_client: built without TLS (-DWITH_TLS)\n");
    return 1;
  }
#endif
  server.sin_family = AF_INET;
  server.sin_port = htons((uint16_t)port);
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  message = malloc(size);
  for (size_t i = 0; i < size; i++) message[i] = (unsigned char)('a' + i % 26);
  ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");

  struct slot *slots = calloc((size_t)conns, sizeof *slots);
  for (int i = 0; i < conns; i++) {
    switch (mode) {
      case ECHO:
      case TLS: open_stream(&slots[i]); break;
      case CHURN: open_slot(&slots[i]); break;
      case UDP: open_udp(&slots[i]); break;
    }
  }
  // Every connection is up: start the traffic.
  for (int i = 0; i < conns; i++) {
    if (mode == UDP) udp_send(&slots[i]);
    else if (mode != CHURN && send_rest(&slots[i]) < 0) die("write");
  }

  double start = now();
  double count_from = start + warmup;
  double end = count_from + seconds;
  double counted_at = 0;
  struct epoll_event events[256];
  for (;;) {
    double t = now();
    if (!counting && t >= count_from) {
      counting = 1;
      counted_at = t;
    }
    if (t >= end) break;
    int n = epoll_wait(ep, events, 256, 20);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      struct slot *s = events[i].data.ptr;
      if (mode == UDP) on_udp_event(s);
      else on_stream_event(s, events[i].events);
    }
    if (mode == UDP) {
      double late = now() - 0.1;
      for (int i = 0; i < conns; i++) {
        if (slots[i].sent_at < late) {
          errors++;
          udp_send(&slots[i]);
        }
      }
    }
  }
  double elapsed = now() - counted_at;
  printf("{\"ops\":%ld,\"seconds\":%.3f,\"rate\":%.1f,\"errors\":%ld,"
         "\"allOps\":%ld}\n",
         ops, elapsed, ops / elapsed, errors, all_ops);
  fflush(stdout);
  return ops > 0 ? 0 : 2;
}
