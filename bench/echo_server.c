// Copyright 2026 the denio authors. MIT license.
//
// The machine's limit: a minimal single-threaded epoll echo server in C.
// Compiled by bench/run.ts with `cc -O2`.
//
//   echo_server tcp    listens on 127.0.0.1, a free port, echoes every byte
//   echo_server udp    binds 127.0.0.1, a free port, echoes every datagram
//
// Prints "LISTENING <port>" once ready, then serves until killed.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFFER (256 * 1024)

struct conn {
  int fd;
  unsigned char *pending;  // bytes read and not yet echoed
  size_t start, end;
};

static int ep;

static void die(const char *what) {
  fprintf(stderr, "echo_server: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int bound_socket(int type, struct sockaddr_in *addr) {
  int fd = socket(AF_INET, type | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  addr->sin_family = AF_INET;
  addr->sin_port = 0;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0) die("bind");
  socklen_t len = sizeof *addr;
  getsockname(fd, (struct sockaddr *)addr, &len);
  return fd;
}

static void drop(struct conn *c) {
  close(c->fd);
  free(c->pending);
  free(c);
}

static void set_events(struct conn *c, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

// Writes pending bytes; returns 1 when all are written, 0 if the socket is
// full, -1 on error.
static int flush(struct conn *c) {
  while (c->start < c->end) {
    ssize_t n = write(c->fd, c->pending + c->start, c->end - c->start);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    c->start += (size_t)n;
  }
  c->start = c->end = 0;
  return 1;
}

static void on_conn(struct conn *c, uint32_t events) {
  if (c->end > c->start) {  // waiting for room to write
    int done = flush(c);
    if (done < 0) return drop(c);
    if (!done) return;
    set_events(c, EPOLLIN);
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  for (;;) {
    ssize_t n = read(c->fd, c->pending, BUFFER);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) return drop(c);
    c->start = 0;
    c->end = (size_t)n;
    int done = flush(c);
    if (done < 0) return drop(c);
    if (!done) {
      set_events(c, EPOLLOUT);
      return;
    }
  }
}

static void serve_tcp(void) {
  struct sockaddr_in addr;
  int listener = bound_socket(SOCK_STREAM, &addr);
  if (listen(listener, 1024) < 0) die("listen");
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  printf("LISTENING %d\n", ntohs(addr.sin_port));
  fflush(stdout);
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      struct conn *c = events[i].data.ptr;
      if (c != NULL) {
        on_conn(c, events[i].events);
        continue;
      }
      for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) break;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = calloc(1, sizeof *c);
        c->fd = fd;
        c->pending = malloc(BUFFER);
        struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
      }
    }
  }
}

static void serve_udp(void) {
  struct sockaddr_in addr;
  int fd = bound_socket(SOCK_DGRAM, &addr);
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  printf("LISTENING %d\n", ntohs(addr.sin_port));
  fflush(stdout);
  static unsigned char buffer[65536];
  struct epoll_event events[1];
  for (;;) {
    if (epoll_wait(ep, events, 1, -1) < 0 && errno != EINTR) die("epoll_wait");
    for (;;) {
      struct sockaddr_in from;
      socklen_t len = sizeof from;
      ssize_t n = recvfrom(fd, buffer, sizeof buffer, 0,
                           (struct sockaddr *)&from, &len);
      if (n < 0) break;
      sendto(fd, buffer, (size_t)n, 0, (struct sockaddr *)&from, len);
    }
  }
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  if (argc == 2 && strcmp(argv[1], "tcp") == 0) serve_tcp();
  if (argc == 2 && strcmp(argv[1], "udp") == 0) serve_udp();
  fprintf(stderr, "usage: echo_server tcp|udp\n");
  return 1;
}
