// Copyright 2026 the denio authors. MIT license.
// Opens COUNT TCP connections to 127.0.0.1:PORT, at most INFLIGHT connects in
// flight, prints {"connected":N,"seconds":S} once every one is established,
// then holds them all (sending nothing) until stdin closes.
// Usage: hold_client PORT COUNT
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define INFLIGHT 64

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: hold_client PORT COUNT\n");
    return 2;
  }
  int port = atoi(argv[1]), count = atoi(argv[2]);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ep = epoll_create1(0);
  struct epoll_event events[256];
  int started = 0, done = 0, inflight = 0;
  double t0 = now();
  while (done < count) {
    while (started < count && inflight < INFLIGHT) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (fd < 0) {
        perror("socket");
        return 1;
      }
      if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
        done++;
        started++;
        continue;
      }
      if (errno != EINPROGRESS) {
        perror("connect");
        return 1;
      }
      struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      started++;
      inflight++;
    }
    int n = epoll_wait(ep, events, 256, 30000);
    if (n <= 0) {
      fprintf(stderr, "stalled at %d of %d\n", done, count);
      return 1;
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd, err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        fprintf(stderr, "connect failed: %d\n", err);
        return 1;
      }
      epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
      inflight--;
      done++;
    }
  }
  printf("{\"connected\":%d,\"seconds\":%.4f}\n", done, now() - t0);
  fflush(stdout);
  char buf[1];
  while (read(0, buf, 1) > 0) {
  }
  return 0;
}
