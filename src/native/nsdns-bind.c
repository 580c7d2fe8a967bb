/*
 * nsdns-bind: the native fast path of the namespace bind helper (src/netns/bind-helper.ts is the
 * portable one). It enters a network namespace, binds the resolver's UDP socket and TCP listener
 * there, and hands both to the daemon over the IPC channel the daemon started it with
 * (NODE_CHANNEL_FD), speaking Node's own handle-passing messages: the daemon receives a
 * dgram.Socket and a net.Server exactly as from the Node helper. A Node start costs ~70 ms; this
 * costs a few. Sockets keep the namespace they were created in, so nothing stays behind but them.
 *
 * usage: nsdns-bind NETNS_PATH ADDRESS PORT     (IPv4 ADDRESS; run as root)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int channel = -1;

/* One JSON line, with `fd` attached as SCM_RIGHTS when it is >= 0. */
static int send_line(const char *line, int fd) {
  struct iovec iov = {(void *)line, strlen(line)};
  struct msghdr msg = {0};
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fd >= 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  ssize_t n;
  do n = sendmsg(channel, &msg, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  return n == (ssize_t)iov.iov_len ? 0 : -1;
}

/* Reads until the daemon acknowledges a handle (Node answers every NODE_HANDLE with an ACK or NACK). */
static int wait_ack(void) {
  char buf[4096];
  size_t used = 0;
  for (;;) {
    ssize_t n = read(channel, buf + used, sizeof buf - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    used += (size_t)n;
    buf[used] = '\0';
    if (strstr(buf, "\"NODE_HANDLE_NACK\"")) return -1;
    if (strstr(buf, "\"NODE_HANDLE_ACK\"")) return 0;
    if (used > sizeof buf / 2) { /* keep the tail: a marker may straddle two reads */
      memmove(buf, buf + used - 64, 64);
      used = 64;
    }
  }
}

/* Reports a failure the way the Node helper does ({kind: 'error', stage, message}) and exits. */
static void fail(const char *stage, int err) {
  char line[512];
  snprintf(line, sizeof line, "{\"kind\":\"error\",\"stage\":\"%s\",\"message\":\"%s\"}\n", stage, strerror(err));
  if (channel >= 0) send_line(line, -1);
  else fprintf(stderr, "nsdns-bind: %s: %s\n", stage, strerror(err));
  exit(1);
}

int main(int argc, char **argv) {
  const char *env = getenv("NODE_CHANNEL_FD");
  if (env) channel = atoi(env);
  if (argc != 4 || channel < 0) {
    fprintf(stderr, "usage: nsdns-bind NETNS_PATH ADDRESS PORT (started by the nsdns daemon)\n");
    return 2;
  }
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1) fail("address", EINVAL);

  int ns = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (ns < 0) fail("open namespace", errno);
  if (setns(ns, CLONE_NEWNET) < 0) fail("setns", errno);
  close(ns);

  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (udp < 0 || bind(udp, (struct sockaddr *)&addr, sizeof addr) < 0) fail("udp", errno);
  int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  /* Accepted connections inherit the send buffer: a client that never reads pins at most this much
     kernel memory, instead of what autotuning would grow it to (megabytes per connection). */
  int sndbuf = 64 * 1024;
  if (tcp < 0 || setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
      setsockopt(tcp, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0) fail("tcp", errno);
  if (bind(tcp, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(tcp, 511) < 0) fail("tcp", errno);

  if (send_line("{\"cmd\":\"NODE_HANDLE\",\"type\":\"dgram.Socket\",\"msg\":{\"kind\":\"udp\"},\"dgramType\":\"udp4\"}\n", udp) < 0 || wait_ack() < 0) fail("hand over udp", errno ? errno : EPIPE);
  if (send_line("{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Server\",\"msg\":{\"kind\":\"tcp\"}}\n", tcp) < 0 || wait_ack() < 0) fail("hand over tcp", errno ? errno : EPIPE);
  return 0;
}
