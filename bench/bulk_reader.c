// Copyright 2026 the denio authors. MIT license.
//
// The reader of the bulk benchmark. Compiled by bench/run.ts with `cc -O2`.
//
//   bulk_reader SLOW_SECONDS
//
// Listens on 127.0.0.1 (a free port), prints "LISTENING <port>", accepts one
// connection and reads it to EOF: slowly for SLOW_SECONDS (16 KiB every
// 10 ms, so the sender's buffers fill and its flow control must hold it
// back), then as fast as it can. Prints one JSON line: the bytes read, the
// whole time from accept to EOF and the rate of the fast part.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "bulk_reader: %s: %s\n", what, strerror(errno));
  exit(1);
}

int main(int argc, char **argv) {
  double slow = argc > 1 ? atof(argv[1]) : 1.0;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0) die("socket");
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  socklen_t len = sizeof addr;
  getsockname(listener, (struct sockaddr *)&addr, &len);
  if (listen(listener, 1) < 0) die("listen");
  printf("LISTENING %d\n", ntohs(addr.sin_port));
  fflush(stdout);
  int fd = accept(listener, NULL, NULL);
  if (fd < 0) die("accept");
  static unsigned char buffer[1 << 20];
  long long total = 0, fast_bytes = 0;
  double start = now();
  double fast_from = start + slow;
  struct timespec pause = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
  while (now() < fast_from) {
    ssize_t n = read(fd, buffer, 16 * 1024);
    if (n < 0) die("read");
    if (n == 0) goto done;
    total += n;
    nanosleep(&pause, NULL);
  }
  fast_from = now();
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0) die("read");
    if (n == 0) break;
    total += n;
    fast_bytes += n;
  }
done:;
  double end = now();
  double fast_seconds = end - fast_from;
  printf("{\"bytes\":%lld,\"seconds\":%.3f,\"fastBytes\":%lld,"
         "\"fastSeconds\":%.3f,\"fastRate\":%.1f}\n",
         total, end - start, fast_bytes, fast_seconds,
         fast_seconds > 0 ? fast_bytes / fast_seconds : 0.0);
  close(fd);
  close(listener);
  return 0;
}
