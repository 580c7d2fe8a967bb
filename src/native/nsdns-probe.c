/*
 * nsdns-probe: the native fast path of the daemon's health probes (src/health/native.ts starts and
 * feeds it; src/health/probes.ts is the portable path). One long-lived process, one epoll loop:
 * per probe a non-blocking socket with SO_LINGER 0, connect, one edge-triggered registration, and
 * for HTTP a GET written at once and the status line read. A probe that got its answer ends its
 * connection with connect(AF_UNSPEC) (a reset, no TIME_WAIT) and leaves the socket for the next
 * probe: no socket(), close() or epoll registration per probe, a large part of what a probe
 * costs otherwise (bench/health-probes.sh measures it). A socket is made
 * only when none is idle, so sockets in flight and idle together never exceed MAX_INFLIGHT.
 * The probes due in a tick start together and their results go to the daemon in one write per
 * tick, so the daemon wakes a few times a second, not once per probe. The daemon keeps the state
 * machines; this process only probes and reports.
 *
 * stdin, from the daemon, lines of at most LINE_MAX_LEN bytes (anything else ends this process):
 *   A SLOT GEN tcp|http ADDRESS PORT INTERVAL_MS TIMEOUT_MS FIRST_MS [PATH]   add or replace
 *   D SLOT                                                                    remove
 * stdout, to the daemon: RECORD_SIZE-byte records in host byte order (same machine):
 *   u32 slot, u32 gen, u16 kind, u16 0, i32 value, f64 start, f64 end (epoch ms)
 *   kind: 0 connected, 1 errno (value), 2 HTTP status (value), 3 not an HTTP reply,
 *         4 timed out, 5 closed before a status line
 * EOF on stdin ends it (status 0); so does the daemon's death (PR_SET_PDEATHSIG).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 512
#define MAX_SLOTS 65536
#define MAX_INFLIGHT 256
#define PATH_MAX_LEN 256
#define STATUS_HEAD 13
#define RECORD_SIZE 32
#define OUT_RECORDS 2048
#define TICK_MIN_MS 50
#define TICK_MAX_MS 250

enum { K_CONNECTED, K_ERRNO, K_HTTP, K_NOT_HTTP, K_TIMEOUT, K_CLOSED };
enum { IDLE, CONNECTING, READING };

struct probe {
  uint8_t used, http, state, headlen;
  uint32_t gen, seq;
  int fd;
  struct sockaddr_storage addr;
  socklen_t alen;
  uint32_t interval, timeout;
  int64_t due, deadline; /* monotonic ms */
  double start;          /* epoch ms */
  char *req;
  size_t reqlen, sent;
  char head[STATUS_HEAD + 1];
};

static struct probe *probes;
static uint32_t nslots; /* slots allocated (the highest used + 1, grown on demand) */
/* want_start: probes are due but wait for a slot in flight (start them as slots free). */
static int ep, inflight, tick_ms = TICK_MAX_MS, want_start, starved;
static unsigned char out[OUT_RECORDS * RECORD_SIZE];
static size_t outlen;
/* Idle sockets by family, registered with epoll still (their events carry an ended probe's seq). */
static int idle4[MAX_INFLIGHT], idle6[MAX_INFLIGHT], nidle4, nidle6;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
static double wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1000 + (double)(ts.tv_nsec / 1000000);
}

static void flush_out(void) {
  size_t at = 0;
  while (at < outlen) {
    ssize_t n = write(1, out + at, outlen - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(0); /* the daemon is gone */
    at += (size_t)n;
  }
  outlen = 0;
}

static void report(uint32_t slot, struct probe *p, uint16_t kind, int32_t value, double end) {
  if (outlen + RECORD_SIZE > sizeof out) flush_out();
  unsigned char *r = out + outlen;
  uint16_t zero = 0;
  memcpy(r, &slot, 4);
  memcpy(r + 4, &p->gen, 4);
  memcpy(r + 8, &kind, 2);
  memcpy(r + 10, &zero, 2);
  memcpy(r + 12, &value, 4);
  memcpy(r + 16, &p->start, 8);
  memcpy(r + 24, &end, 8);
  outlen += RECORD_SIZE;
}

/*
 * Ends the probe in flight. After an answer the connection is reset by connect(AF_UNSPEC) and the
 * socket kept for the next probe; otherwise (an error, a timeout: a connect may still be under
 * way) it is closed, a reset too by SO_LINGER 0.
 */
static void finish(uint32_t slot, struct probe *p, uint16_t kind, int32_t value) {
  if (p->fd >= 0) {
    int v6 = p->addr.ss_family == AF_INET6, *n = v6 ? &nidle6 : &nidle4;
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    if ((kind == K_CONNECTED || kind == K_HTTP) && *n < MAX_INFLIGHT && connect(p->fd, &unspec, sizeof unspec) == 0)
      (v6 ? idle6 : idle4)[(*n)++] = p->fd;
    else
      close(p->fd);
  }
  p->fd = -1;
  p->state = IDLE;
  inflight--;
  want_start = starved;
  double end = wall_ms();
  /* A result after the deadline is a timeout, whatever it was (the prober's rule). */
  if (mono_ms() > p->deadline) kind = K_TIMEOUT, value = 0;
  report(slot, p, kind, value, end);
}

static void start(uint32_t slot, struct probe *p) {
  p->seq++;
  p->start = wall_ms();
  p->deadline = mono_ms() + p->timeout;
  p->headlen = 0;
  p->sent = 0;
  int v6 = p->addr.ss_family == AF_INET6, *n = v6 ? &nidle6 : &nidle4;
  int reused = *n > 0;
  int fd = reused ? (v6 ? idle6 : idle4)[--(*n)] : socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  inflight++;
  p->state = CONNECTING;
  p->fd = fd;
  if (fd < 0) return finish(slot, p, K_ERRNO, errno);
  if (!reused) {
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  if (connect(fd, (struct sockaddr *)&p->addr, p->alen) < 0 && errno != EINPROGRESS) return finish(slot, p, K_ERRNO, errno);
  /* An idle socket's registration is pointed at this probe (epoll reports the state at delivery). */
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = ((uint64_t)p->seq << 32) | slot};
  if (epoll_ctl(ep, reused ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0) return finish(slot, p, K_ERRNO, errno);
}

/* HTTP/1.x NNN and a space or the line's end; 0 when the head is not that. */
static int status_of(const char *h, size_t n) {
  if (n < STATUS_HEAD || memcmp(h, "HTTP/1.", 7) != 0 || (h[7] != '0' && h[7] != '1') || h[8] != ' ') return 0;
  if (h[9] < '1' || h[9] > '5' || h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9') return 0;
  if (h[12] != ' ' && h[12] != '\r' && h[12] != '\n') return 0;
  return (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
}

static void on_event(uint32_t slot, uint32_t seq, uint32_t events) {
  if (slot >= nslots) return;
  struct probe *p = &probes[slot];
  if (!p->used || p->state == IDLE || p->seq != seq) return; /* a stale event of an ended probe */
  if (p->state == CONNECTING) {
    if (events & (EPOLLERR | EPOLLHUP)) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      return finish(slot, p, K_ERRNO, err ? err : ECONNRESET);
    }
    if (!(events & EPOLLOUT)) return;
    if (!p->http) return finish(slot, p, K_CONNECTED, 0);
    p->state = READING;
  }
  /* READING (HTTP): the request goes out whole as soon as it can, then the status line comes in. */
  while (p->sent < p->reqlen) {
    ssize_t n = send(p->fd, p->req + p->sent, p->reqlen - p->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) return finish(slot, p, K_ERRNO, errno);
    p->sent += (size_t)n;
  }
  for (;;) {
    ssize_t n = recv(p->fd, p->head + p->headlen, STATUS_HEAD - p->headlen, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) return finish(slot, p, K_ERRNO, errno);
    if (n == 0) return finish(slot, p, K_CLOSED, 0);
    p->headlen += (uint8_t)n;
    if (p->headlen < STATUS_HEAD && !memchr(p->head, '\n', p->headlen)) continue;
    int status = status_of(p->head, p->headlen);
    return status ? finish(slot, p, K_HTTP, status) : finish(slot, p, K_NOT_HTTP, 0);
  }
}

static void recompute_tick(void) {
  uint32_t shortest = UINT32_MAX;
  for (uint32_t i = 0; i < nslots; i++) if (probes[i].used && probes[i].interval < shortest) shortest = probes[i].interval;
  uint32_t t = shortest == UINT32_MAX ? TICK_MAX_MS : shortest / 10;
  tick_ms = t < TICK_MIN_MS ? TICK_MIN_MS : t > TICK_MAX_MS ? TICK_MAX_MS : (int)t;
}

static void drop(uint32_t slot) {
  struct probe *p = &probes[slot];
  if (p->state != IDLE) {
    close(p->fd);
    p->fd = -1;
    p->state = IDLE;
    inflight--;
  }
  free(p->req);
  p->req = NULL;
  p->used = 0;
}

/* A decimal number of at most 10 digits within [min, max]; -1 when it is not. */
static int64_t number(const char *s, int64_t min, int64_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > 10) return -1;
  int64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v < min || v > max ? -1 : v;
}

static void bad(const char *why) {
  fprintf(stderr, "nsdns-probe: %s\n", why);
  _exit(2);
}

static void command(char *line) {
  char *tok[11];
  int n = 0;
  for (char *s = line; n < 11;) {
    tok[n++] = s;
    char *sp = strchr(s, ' ');
    if (!sp) break;
    *sp = '\0';
    s = sp + 1;
  }
  if (n == 2 && strcmp(tok[0], "D") == 0) {
    int64_t slot = number(tok[1], 0, MAX_SLOTS - 1);
    if (slot < 0) bad("bad slot");
    if ((uint32_t)slot < nslots && probes[slot].used) drop((uint32_t)slot);
    recompute_tick();
    return;
  }
  if (strcmp(tok[0], "A") != 0 || n < 9 || n > 10) bad("bad command");
  int64_t slot = number(tok[1], 0, MAX_SLOTS - 1), gen = number(tok[2], 0, UINT32_MAX);
  int http = strcmp(tok[3], "http") == 0;
  if (!http && strcmp(tok[3], "tcp") != 0) bad("bad type");
  int64_t port = number(tok[5], 1, 65535), interval = number(tok[6], 100, 86400000);
  int64_t timeout = number(tok[7], 10, 60000), first = number(tok[8], 0, 86400000);
  if (slot < 0 || gen < 0 || port < 0 || interval < 0 || timeout < 0 || first < 0) bad("bad number");
  if (http != (n == 10)) bad("a path goes with http only");
  struct sockaddr_storage addr = {0};
  socklen_t alen;
  if (strchr(tok[4], ':')) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
    if (inet_pton(AF_INET6, tok[4], &a6->sin6_addr) != 1) bad("bad address");
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    alen = sizeof *a6;
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
    if (inet_pton(AF_INET, tok[4], &a4->sin_addr) != 1) bad("bad address");
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    alen = sizeof *a4;
  }
  char *req = NULL;
  size_t reqlen = 0;
  if (http) {
    const char *path = tok[9];
    size_t plen = strlen(path);
    if (plen == 0 || plen > PATH_MAX_LEN || path[0] != '/') bad("bad path");
    for (size_t i = 0; i < plen; i++) if (path[i] < 0x21 || path[i] > 0x7e || path[i] == '#') bad("bad path");
    size_t cap = plen + 200;
    req = malloc(cap);
    if (!req) bad("out of memory");
    int w = snprintf(req, cap, "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUser-Agent: nsdns-health\r\nAccept: */*\r\nConnection: close\r\n\r\n",
                     path, addr.ss_family == AF_INET6 ? "[" : "", tok[4], addr.ss_family == AF_INET6 ? "]" : "", (unsigned)port);
    if (w < 0 || (size_t)w >= cap) bad("request too long");
    reqlen = (size_t)w;
  }
  if ((uint32_t)slot >= nslots) {
    uint32_t grown = nslots ? nslots : 64;
    while (grown <= (uint32_t)slot) grown *= 2;
    if (grown > MAX_SLOTS) grown = MAX_SLOTS;
    struct probe *more = realloc(probes, grown * sizeof *probes);
    if (!more) bad("out of memory");
    memset(more + nslots, 0, (grown - nslots) * sizeof *probes);
    for (uint32_t i = nslots; i < grown; i++) more[i].fd = -1;
    probes = more;
    nslots = grown;
  }
  struct probe *p = &probes[slot];
  if (p->used) drop((uint32_t)slot);
  p->used = 1;
  p->http = (uint8_t)http;
  p->gen = (uint32_t)gen;
  p->addr = addr;
  p->alen = alen;
  p->interval = (uint32_t)interval;
  p->timeout = (uint32_t)timeout;
  p->due = mono_ms() + first;
  p->req = req;
  p->reqlen = reqlen;
  recompute_tick();
}

static char line[LINE_MAX_LEN + 1];
static size_t linelen;

static void read_commands(void) {
  char buf[8192];
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) _exit(0); /* the daemon closed our input: no probes left, or it is gone */
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] != '\n') {
        if (linelen >= LINE_MAX_LEN) bad("line too long");
        line[linelen++] = buf[i];
        continue;
      }
      line[linelen] = '\0';
      linelen = 0;
      command(line);
    }
  }
}

/* Starts the probes due by now (as many as slots in flight allow), and moves each one's turn on. */
static void start_due(int64_t now) {
  static uint32_t from;
  int waiting = 0;
  for (uint32_t k = 0; k < nslots; k++) {
    uint32_t i = (from + k) % nslots;
    struct probe *p = &probes[i];
    if (!p->used || p->due > now) continue;
    if (p->state != IDLE) { /* the previous one still runs: this turn is skipped */
      p->due += p->interval;
      if (p->due <= now) p->due = now + p->interval;
      continue;
    }
    if (inflight >= MAX_INFLIGHT) {
      if (!waiting) from = i;
      waiting = 1;
      continue;
    }
    p->due += p->interval;
    if (p->due <= now) p->due = now + p->interval;
    start(i, p);
  }
  starved = want_start = waiting;
}

/* Ends the probes past their deadline. */
static void expire(int64_t now) {
  for (uint32_t i = 0; i < nslots; i++) {
    struct probe *p = &probes[i];
    if (p->used && p->state != IDLE && p->deadline < now) finish(i, p, K_TIMEOUT, 0);
  }
}

int main(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 0;
  signal(SIGPIPE, SIG_IGN);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return 1;
  struct epoll_event in = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in) < 0) return 1;
  struct epoll_event evs[256];
  int64_t next_tick = mono_ms();
  for (;;) {
    int64_t now = mono_ms();
    int wait = want_start && inflight < MAX_INFLIGHT ? 0 : next_tick > now ? (int)(next_tick - now) : 0;
    int n = epoll_wait(ep, evs, 256, wait);
    if (n < 0 && errno != EINTR) return 1;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u64 == UINT64_MAX) read_commands();
      else on_event((uint32_t)evs[i].data.u64, (uint32_t)(evs[i].data.u64 >> 32), evs[i].events);
    }
    now = mono_ms();
    if (now >= next_tick) {
      expire(now);
      flush_out();
      start_due(now);
      next_tick = (now / tick_ms + 1) * tick_ms;
    } else if (want_start && inflight < MAX_INFLIGHT) {
      start_due(now);
    }
  }
}
