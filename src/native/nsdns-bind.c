/*
 * nsdns-bind: the native fast path of the namespace bind helper (src/listeners/bind-helper.ts is the
 * portable one). It enters a network namespace, binds the resolver's UDP socket and TCP listener
 * there, and hands both to the daemon over the IPC channel the daemon started it with
 * (NODE_CHANNEL_FD), speaking Node's own handle-passing messages: the daemon receives a
 * dgram.Socket and a net.Server exactly as from the Node helper, without the cost of starting Node
 * for every namespace (bench/ measures both paths). Sockets keep the namespace they were created in, so nothing stays behind but them.
 *
 * usage: nsdns-bind NETNS_PATH ADDRESS PORT     (IPv4 ADDRESS; run as root)
 *        nsdns-bind --group N ADDRESS PORT      (a host listener, in the daemon's own namespace)
 *
 * --group: a host listener is one address shared by every client that can reach it. With one UDP
 * socket, one source flooding it fills the socket's receive queue and the kernel drops everyone's
 * datagrams with the flooder's. Here the listener is N UDP sockets on the same ADDRESS:PORT
 * (SO_REUSEPORT) and a classic BPF program (SO_ATTACH_REUSEPORT_CBPF) picks the socket by a hash
 * of the client's source address: each source fills only its own socket's queue, and the daemon's
 * loop reads every ready socket in turn. IPv4 or IPv6 ADDRESS; PORT 0 picks a port free for UDP
 * and TCP. Handed over: N dgram.Sockets ({kind: "udp"}), then the net.Server ({kind: "tcp"}).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

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

static int group_main(const char *count, const char *address, const char *port);

/*
 * The resolver's address lives on lo. In a namespace whose lo was never up there is no local route
 * table yet, and the kernel takes a bind to 127.0.0.11 there as one to a broadcast address: the
 * socket answers from 127.0.0.1 even once lo is up, and clients (dig, glibc) drop replies from an
 * address they did not ask. So lo comes up first, as the plumbing does for its own endpoints.
 */
static void loopback_up(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr = {0};
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) fail("loopback", errno);
  if (!(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) fail("loopback", errno);
  }
  close(fd);
}

int main(int argc, char **argv) {
  const char *env = getenv("NODE_CHANNEL_FD");
  if (env) channel = atoi(env);
  if (argc == 5 && channel >= 0 && strcmp(argv[1], "--group") == 0) return group_main(argv[2], argv[3], argv[4]);
  if (argc != 4 || channel < 0) {
    fprintf(stderr, "usage: nsdns-bind NETNS_PATH ADDRESS PORT | --group N ADDRESS PORT (started by the nsdns daemon)\n");
    return 2;
  }
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1) fail("address", EINVAL);

  int ns = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (ns < 0) fail("open namespace", errno);
  /* Which namespace the path named when we opened it (DEV:INO, as namespace-identity.ts reads it):
     the daemon's own look at the path came a moment earlier and may have seen none or another. */
  struct stat st;
  if (fstat(ns, &st) < 0) fail("open namespace", errno);
  if (setns(ns, CLONE_NEWNET) < 0) fail("setns", errno);
  close(ns);
  loopback_up();

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

  char line[200];
  snprintf(line, sizeof line, "{\"cmd\":\"NODE_HANDLE\",\"type\":\"dgram.Socket\",\"msg\":{\"kind\":\"udp\",\"netns\":\"%llu:%llu\"},\"dgramType\":\"udp4\"}\n",
           (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
  if (send_line(line, udp) < 0 || wait_ack() < 0) fail("hand over udp", errno ? errno : EPIPE);
  if (send_line("{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Server\",\"msg\":{\"kind\":\"tcp\"}}\n", tcp) < 0 || wait_ack() < 0) fail("hand over tcp", errno ? errno : EPIPE);
  return 0;
}

/*
 * The socket of a datagram: a Fibonacci hash of its source address, top bits, so the index is < N
 * (a power of two). A reuseport program on UDP sees the payload at offset 0 (the kernel pulls the
 * UDP header first); the IP header is reached at SKF_NET_OFF. IPv6: the source's /64 prefix, the
 * unit a host gets (a client choosing addresses within its own /64 must not reach every socket;
 * hosts sharing one /64 share a socket, as clients behind one NAT do). An index >= the group's size (a
 * socket closed meanwhile) makes the kernel fall back to its own hash: never a drop.
 */
static int steer(int fd, unsigned bits) {
  struct sock_filter code[] = {
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (unsigned)SKF_NET_OFF),      /* 0: A = first byte of the IP header */
    BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),                         /* 1: A = IP version */
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 4, 0, 2),                   /* 2: IPv4 -> 3, else -> 5 */
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (unsigned)SKF_NET_OFF + 12), /* 3: A = IPv4 source */
    BPF_JUMP(BPF_JMP | BPF_JA, 5, 0, 0),                            /* 4: -> 10 */
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 7),                   /* 5: IPv6 -> 6, else -> 13 */
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (unsigned)SKF_NET_OFF + 8),  /* 6: A = IPv6 source, bits 0-31 */
    BPF_STMT(BPF_MISC | BPF_TAX, 0),                                /* 7: X = A */
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (unsigned)SKF_NET_OFF + 12), /* 8: A = bits 32-63 */
    BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),                         /* 9: A ^= X: the /64 prefix */
    BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, 0x9E3779B1u),               /* 10: A *= 2^32 / golden ratio (mod 2^32) */
    BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 32 - bits),                 /* 11: its top `bits` bits */
    BPF_STMT(BPF_RET | BPF_A, 0),                                   /* 12 */
    BPF_STMT(BPF_RET | BPF_K, 0),                                   /* 13: neither: the first socket */
  };
  struct sock_fprog prog = {sizeof code / sizeof code[0], code};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog);
}

#define MAX_GROUP 64

/* One try at binding the group and the TCP listener; -1 with errno and *stage on failure (all closed). */
static int bind_group(int family, struct sockaddr_storage *addr, socklen_t len, int n, unsigned bits, int *udp, int *tcp, const char **stage) {
  int on = 1, i;
  for (i = 0; i < n; i++) udp[i] = -1;
  *tcp = -1;
  for (i = 0; i < n; i++) {
    udp[i] = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (udp[i] < 0 || setsockopt(udp[i], SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) { *stage = "reuseport"; goto fail; }
    /* Before the first bind: the group exists from then on, so a port 0 bind is never given a port
       another process's reuseport group holds, and a taken port is refused instead of joined. */
    if (i == 0 && steer(udp[0], bits) < 0) { *stage = "steer"; goto fail; }
    if (bind(udp[i], (struct sockaddr *)addr, len) < 0) { *stage = "bind"; goto fail; }
    /* Port 0: the others take the port the first one got. */
    if (i == 0 && getsockname(udp[0], (struct sockaddr *)addr, &len) < 0) { *stage = "bind"; goto fail; }
  }
  *tcp = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (*tcp < 0 || setsockopt(*tcp, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) { *stage = "tcp"; goto fail; }
  if (bind(*tcp, (struct sockaddr *)addr, len) < 0 || listen(*tcp, 511) < 0) { *stage = "bind"; goto fail; }
  return 0;
fail:;
  int err = errno;
  for (i = 0; i < n; i++) if (udp[i] >= 0) close(udp[i]);
  if (*tcp >= 0) close(*tcp);
  errno = err;
  return -1;
}

static int group_main(const char *count, const char *address, const char *port_text) {
  char *end;
  long n = strtol(count, &end, 10);
  unsigned bits = 0;
  while ((1L << bits) < n) bits++;
  if (*end || n < 2 || n > MAX_GROUP || (1L << bits) != n) fail("group size", EINVAL);
  long port = strtol(port_text, &end, 10);
  if (*end || port < 0 || port > 65535) fail("port", EINVAL);

  struct sockaddr_storage addr = {0};
  socklen_t len;
  int family;
  struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
  if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
    family = v4->sin_family = AF_INET;
    v4->sin_port = htons((unsigned short)port);
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1) {
    family = v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((unsigned short)port);
    len = sizeof *v6;
  } else {
    fail("address", EINVAL);
  }

  int udp[MAX_GROUP], tcp;
  const char *stage = "bind";
  /* Port 0: the kernel's free UDP port may be taken for TCP; then another one (as host-sockets.ts does). */
  for (int attempt = 0;; attempt++) {
    if (family == AF_INET) v4->sin_port = htons((unsigned short)port);
    else v6->sin6_port = htons((unsigned short)port);
    if (bind_group(family, &addr, len, (int)n, bits, udp, &tcp, &stage) == 0) break;
    if (port != 0 || errno != EADDRINUSE || attempt >= 9) fail(stage, errno);
  }

  char line[160];
  snprintf(line, sizeof line, "{\"cmd\":\"NODE_HANDLE\",\"type\":\"dgram.Socket\",\"msg\":{\"kind\":\"udp\"},\"dgramType\":\"%s\"}\n", family == AF_INET ? "udp4" : "udp6");
  for (int i = 0; i < n; i++) {
    if (send_line(line, udp[i]) < 0 || wait_ack() < 0) fail("hand over udp", errno ? errno : EPIPE);
    close(udp[i]);
  }
  if (send_line("{\"cmd\":\"NODE_HANDLE\",\"type\":\"net.Server\",\"msg\":{\"kind\":\"tcp\"}}\n", tcp) < 0 || wait_ack() < 0) fail("hand over tcp", errno ? errno : EPIPE);
  return 0;
}
