/*
 * The machine's floor for the SSE concurrency workload (bench/sse-concurrency.ts), without Node:
 * a C epoll server writes one ~200-byte frame per stream every 50 ms (20 chunks/s, random phase,
 * drift-free schedule, TCP_NODELAY) to N loopback TCP connections, and a C epoll client in a second
 * process reads them and measures added latency = receive time - due time. Each process is one
 * thread, so on a 2-core machine each gets a core, as in the Node benchmark.
 *
 *   cc -O2 -o /tmp/loopback-floor bench/native/loopback-floor.c && /tmp/loopback-floor 10000 [seconds] [json]
 *
 * bench/sse-concurrency.ts runs it beside the Node servers (`IMPLS=native,...`). Prints p50 / p99 /
 * max added latency over the steady state (first and last second left out), delivered / offered
 * chunks, and each process's CPU (user + sys) per chunk; `json` prints them as one JSON line. If this cannot
 * hold N streams with p99 < 100 ms, no server on this machine can, whatever it is written in.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PERIOD_US 50000
#define FRAME_BYTES 200
#define MAX_LAT_MS 10000

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void cpu_seconds(double *user, double *sys) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
  *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* Server: accept n connections, then tick for `seconds` from a common start. */
static void serve(int listener, int n, int seconds, int report_fd) {
  int *fds = malloc(sizeof(int) * n);
  int64_t *due = malloc(sizeof(int64_t) * n);
  for (int i = 0; i < n; i++) {
    fds[i] = accept(listener, NULL, NULL);
    if (fds[i] < 0) die("accept");
    int one = 1;
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  int64_t start = now_us() + 200000;
  int64_t end = start + (int64_t)seconds * 1000000;
  srand(42);
  for (int i = 0; i < n; i++) due[i] = start + rand() % PERIOD_US;
  char frame[FRAME_BYTES];
  memset(frame, 'x', sizeof frame);
  memcpy(frame, "data: ", 6);
  frame[FRAME_BYTES - 2] = '\n';
  frame[FRAME_BYTES - 1] = '\n';
  /* A wheel of 1 ms slots, as the Node benchmark's producers are woken. */
  int slots = PERIOD_US / 1000;
  int **wheel = calloc(slots, sizeof(int *));
  int *fill = calloc(slots, sizeof(int));
  for (int s = 0; s < slots; s++) wheel[s] = malloc(sizeof(int) * n);
  for (int i = 0; i < n; i++) {
    int s = (int)((due[i] - start + 999) / 1000) % slots; /* the first tick at or after its due time */
    wheel[s][fill[s]++] = i;
  }
  double u0, s0, u1, s1;
  cpu_seconds(&u0, &s0);
  long sent = 0, short_writes = 0;
  for (int64_t tick = start;; tick += 1000) {
    int64_t t = now_us();
    if (tick > t) usleep((useconds_t)(tick - t));
    if (tick >= end) break;
    int s = (int)((tick - start) / 1000) % slots;
    for (int k = 0; k < fill[s]; k++) {
      int i = wheel[s][k];
      while (due[i] <= now_us() && due[i] < end) {
        /* The due time in µs, in a fixed-width field the client parses. */
        snprintf(frame + 6, 21, "%020lld", (long long)due[i]);
        frame[26] = ' ';
        ssize_t w = write(fds[i], frame, FRAME_BYTES);
        if (w != FRAME_BYTES) short_writes++;
        sent++;
        due[i] += PERIOD_US;
      }
    }
  }
  cpu_seconds(&u1, &s1);
  char line[256];
  int len = snprintf(line, sizeof line, "%ld %ld %.3f %.3f\n", sent, short_writes, u1 - u0, s1 - s0);
  if (write(report_fd, line, len) != len) die("report");
  for (int i = 0; i < n; i++) close(fds[i]);
}

/* Client: n connections, reads frames, histogram of added latency in 0.1 ms buckets. */
static void client(int port, int n, int seconds, int report_fd) {
  int ep = epoll_create1(0);
  int *fill = calloc(n, sizeof(int));
  int *fds = malloc(sizeof(int) * n);
  char (*bufs)[FRAME_BYTES] = malloc((size_t)n * FRAME_BYTES);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  for (int i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
    fcntl(fd, F_SETFL, O_NONBLOCK);
    fds[i] = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  int buckets = MAX_LAT_MS * 10;
  long *hist = calloc(buckets + 1, sizeof(long));
  long received = 0, in_window = 0;
  int64_t first_due = 0;
  double u0, s0, u1, s1;
  cpu_seconds(&u0, &s0);
  struct epoll_event events[512];
  int64_t deadline = now_us() + (int64_t)(seconds + 3) * 1000000;
  int idle_rounds = 0;
  while (now_us() < deadline) {
    int k = epoll_wait(ep, events, 512, 100);
    if (k == 0 && received > 0 && ++idle_rounds > 5) break;
    if (k > 0) idle_rounds = 0;
    for (int e = 0; e < k; e++) {
      int i = (int)events[e].data.u32;
      int sock = fds[i];
      for (;;) {
        ssize_t r = read(sock, bufs[i] + fill[i], FRAME_BYTES - fill[i]);
        if (r <= 0) break;
        fill[i] += (int)r;
        if (fill[i] < FRAME_BYTES) continue;
        fill[i] = 0;
        int64_t due = atoll(bufs[i] + 6);
        int64_t lat = now_us() - due;
        received++;
        if (first_due == 0) first_due = due;
        /* Steady state: due between 1 s after the start and 1 s before the end. */
        if (due >= first_due + 1000000 && due < first_due + (int64_t)(seconds - 1) * 1000000) {
          int b = (int)(lat / 100);
          if (b < 0) b = 0;
          if (b > buckets) b = buckets;
          hist[b]++;
          in_window++;
        }
      }
    }
  }
  cpu_seconds(&u1, &s1);
  long p50 = -1, p99 = -1, max = 0, acc = 0;
  for (int b = 0; b <= buckets; b++) {
    if (hist[b] == 0) continue;
    acc += hist[b];
    if (p50 < 0 && acc * 2 >= in_window) p50 = b;
    if (p99 < 0 && acc * 100 >= in_window * 99) p99 = b;
    max = b;
  }
  char line[256];
  int len = snprintf(line, sizeof line, "%ld %ld %.1f %.1f %.1f %.3f %.3f\n", received, in_window, p50 / 10.0, p99 / 10.0,
                     max / 10.0, u1 - u0, s1 - s0);
  if (write(report_fd, line, len) != len) die("report");
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10000;
  int seconds = argc > 2 ? atoi(argv[2]) : 8;
  int json = argc > 3 && strcmp(argv[3], "json") == 0;
  if (n < 1 || seconds < 3) {
    fprintf(stderr, "usage: loopback-floor <streams> [seconds >= 3] [json]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (listen(listener, 65535) < 0) die("listen");
  socklen_t alen = sizeof addr;
  getsockname(listener, (struct sockaddr *)&addr, &alen);
  int port = ntohs(addr.sin_port);
  int srv_pipe[2], cli_pipe[2];
  if (pipe(srv_pipe) < 0 || pipe(cli_pipe) < 0) die("pipe");
  pid_t cpid = fork();
  if (cpid == 0) {
    close(listener);
    close(srv_pipe[0]);
    close(srv_pipe[1]);
    close(cli_pipe[0]);
    client(port, n, seconds, cli_pipe[1]);
    _exit(0);
  }
  serve(listener, n, seconds, srv_pipe[1]);
  int status;
  waitpid(cpid, &status, 0);
  char sbuf[256] = {0}, cbuf[256] = {0};
  if (read(srv_pipe[0], sbuf, sizeof sbuf - 1) <= 0 || read(cli_pipe[0], cbuf, sizeof cbuf - 1) <= 0) die("results");
  long sent, short_writes, received, in_window;
  double su, ss, cu, cs, p50, p99, max;
  sscanf(sbuf, "%ld %ld %lf %lf", &sent, &short_writes, &su, &ss);
  sscanf(cbuf, "%ld %ld %lf %lf %lf %lf %lf", &received, &in_window, &p50, &p99, &max, &cu, &cs);
  double offered = (double)n * (seconds - 2) * 1e6 / PERIOD_US;
  if (json) {
    printf("{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f,\"offered\":%.0f,\"delivered\":%ld,\"sent\":%ld,\"received\":%ld,"
           "\"serverUser\":%.3f,\"serverSystem\":%.3f,\"clientCpu\":%.3f,\"seconds\":%d,\"shortWrites\":%ld}\n",
           p50, p99, max, offered, in_window, sent, received, su, ss, cu + cs, seconds, short_writes);
    return 0;
  }
  printf("N=%6d: p50 %.1f p99 %.1f max %.1f ms; delivered %.1f%% (%ld/%ld sent/received); server %.1f µs/chunk "
         "(%.1f user + %.1f sys, %.0f%% CPU); client %.1f µs/chunk (%.0f%% CPU)%s\n",
         n, p50, p99, max, 100.0 * in_window / offered, sent, received, (su + ss) / sent * 1e6, su / sent * 1e6,
         ss / sent * 1e6, 100 * (su + ss) / seconds, (cu + cs) / received * 1e6, 100 * (cu + cs) / seconds,
         short_writes ? " (short writes!)" : "");
  return p99 < 100 && in_window >= 0.99 * offered ? 0 : 1;
}
