/*
 * nsdns-links: the native fast path for the link work inside a network namespace (the portable
 * path is `nsenter --net=NS ip -batch`, see src/plumbing/links.ts). A netlink socket answers for
 * the namespace it was opened in, and Node cannot enter one; this enters it with setns(), opens
 * one rtnetlink socket there and does the few changes a connect needs, in the order given,
 * stopping at the first failure. It costs one small process instead of nsenter plus ip.
 *
 * usage: nsdns-links NETNS_PATH OP...      (run as root)
 *   up IFNAME              set the link up
 *   addr IFNAME CIDR       add an address (IPv6 without duplicate address detection, as `nodad`)
 *   route IFNAME GATEWAY   add a default route via GATEWAY on IFNAME
 *   defaults               print "ipv4 0|1 ipv6 0|1": whether a default route exists (main table)
 * On failure: one line "STEP: reason" on stderr (STEP in words: "adding address A to IF"), status 1.
 * The caller validated every argument; they are checked again here before use.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int nl = -1;
static unsigned seq = 1;

struct req {
  struct nlmsghdr h;
  char body[512];
};

static void die(const char *step, const char *reason) {
  fprintf(stderr, "%s: %s\n", step, reason);
  exit(1);
}

static void put_attr(struct req *r, unsigned short type, const void *data, size_t len) {
  struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->h.nlmsg_len));
  a->rta_type = type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(a), data, len);
  r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Sends one request and waits for its acknowledgement; returns 0 or a positive errno. */
static int talk(struct req *r) {
  r->h.nlmsg_seq = ++seq;
  r->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  if (send(nl, r, r->h.nlmsg_len, 0) < 0) return errno;
  char buf[8192];
  for (;;) {
    ssize_t n = recv(nl, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != r->h.nlmsg_seq || h->nlmsg_type != NLMSG_ERROR) continue;
      return -((struct nlmsgerr *)NLMSG_DATA(h))->error;
    }
  }
}

static int ifindex(const char *step, const char *name) {
  if (strlen(name) >= IFNAMSIZ) die(step, "invalid interface name");
  int index = (int)if_nametoindex(name);
  if (index == 0) die(step, "no such interface in the namespace");
  return index;
}

static void link_up(const char *step, const char *name) {
  struct req r = {0};
  r.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  r.h.nlmsg_type = RTM_NEWLINK;
  struct ifinfomsg *i = NLMSG_DATA(&r.h);
  i->ifi_index = ifindex(step, name);
  i->ifi_flags = IFF_UP;
  i->ifi_change = IFF_UP;
  int err = talk(&r);
  if (err) die(step, strerror(err));
}

/* Parses ADDRESS or ADDRESS/LEN; returns the family, fills `bytes` and `len`. */
static int parse_ip(const char *step, const char *text, unsigned char *bytes, int *len) {
  char copy[64];
  if (strlen(text) >= sizeof copy) die(step, "invalid address");
  strcpy(copy, text);
  char *slash = strchr(copy, '/');
  if (slash) *slash = '\0';
  int family = strchr(copy, ':') ? AF_INET6 : AF_INET;
  if (inet_pton(family, copy, bytes) != 1) die(step, "invalid address");
  int max = family == AF_INET ? 32 : 128;
  if (slash) {
    char *end;
    long l = strtol(slash + 1, &end, 10);
    if (*end || slash[1] == '\0' || l < 0 || l > max) die(step, "invalid prefix length");
    *len = (int)l;
  } else {
    *len = max;
  }
  return family;
}

static void add_addr(const char *step, const char *name, const char *cidr) {
  unsigned char bytes[16];
  int len;
  int family = parse_ip(step, cidr, bytes, &len);
  struct req r = {0};
  r.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
  r.h.nlmsg_type = RTM_NEWADDR;
  r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  struct ifaddrmsg *a = NLMSG_DATA(&r.h);
  a->ifa_family = (unsigned char)family;
  a->ifa_prefixlen = (unsigned char)len;
  a->ifa_index = (unsigned)ifindex(step, name);
  a->ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
  size_t size = family == AF_INET ? 4 : 16;
  put_attr(&r, IFA_LOCAL, bytes, size);
  put_attr(&r, IFA_ADDRESS, bytes, size);
  if (family == AF_INET && len < 31) { /* the broadcast address, as `ip addr add` with `brd +` */
    unsigned char brd[4];
    unsigned mask = len == 0 ? 0 : 0xffffffffu << (32 - len);
    unsigned v = ((unsigned)bytes[0] << 24 | (unsigned)bytes[1] << 16 | (unsigned)bytes[2] << 8 | bytes[3]) | ~mask;
    brd[0] = v >> 24; brd[1] = v >> 16; brd[2] = v >> 8; brd[3] = v;
    put_attr(&r, IFA_BROADCAST, brd, 4);
  }
  int err = talk(&r);
  if (err) die(step, strerror(err));
}

static void add_default(const char *step, const char *name, const char *gateway) {
  unsigned char bytes[16];
  int len;
  if (strchr(gateway, '/')) die(step, "invalid gateway");
  int family = parse_ip(step, gateway, bytes, &len);
  struct req r = {0};
  r.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
  r.h.nlmsg_type = RTM_NEWROUTE;
  r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  struct rtmsg *m = NLMSG_DATA(&r.h);
  m->rtm_family = (unsigned char)family;
  m->rtm_table = RT_TABLE_MAIN;
  m->rtm_protocol = RTPROT_BOOT;
  m->rtm_scope = RT_SCOPE_UNIVERSE;
  m->rtm_type = RTN_UNICAST;
  int oif = ifindex(step, name);
  put_attr(&r, RTA_GATEWAY, bytes, family == AF_INET ? 4 : 16);
  put_attr(&r, RTA_OIF, &oif, sizeof oif);
  int err = talk(&r);
  if (err) die(step, strerror(err));
}

/* Dumps one family's routes and tells whether a default (dst length 0, main table, unicast) is there. */
static int has_default(int family) {
  struct req r = {0};
  r.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
  r.h.nlmsg_type = RTM_GETROUTE;
  r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  r.h.nlmsg_seq = ++seq;
  ((struct rtmsg *)NLMSG_DATA(&r.h))->rtm_family = (unsigned char)family;
  if (send(nl, &r, r.h.nlmsg_len, 0) < 0) die("defaults", strerror(errno));
  int found = 0;
  static char buf[32768];
  for (;;) {
    ssize_t n = recv(nl, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("defaults", strerror(errno));
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != r.h.nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return found;
      if (h->nlmsg_type == NLMSG_ERROR) die("defaults", strerror(-((struct nlmsgerr *)NLMSG_DATA(h))->error));
      struct rtmsg *m = NLMSG_DATA(h);
      /* the table may be in RTA_TABLE only when above 255; main (254) is in rtm_table */
      if (m->rtm_dst_len == 0 && m->rtm_table == RT_TABLE_MAIN && m->rtm_type == RTN_UNICAST) found = 1;
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: nsdns-links NETNS_PATH OP... (up IFNAME | addr IFNAME CIDR | route IFNAME GATEWAY | defaults)\n");
    return 2;
  }
  int ns = open(argv[1], O_RDONLY | O_CLOEXEC);
  if (ns < 0) die("open namespace", strerror(errno));
  if (setns(ns, CLONE_NEWNET) < 0) die("enter namespace", strerror(errno));
  close(ns);
  nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (nl < 0) die("netlink", strerror(errno));
  struct sockaddr_nl local = {.nl_family = AF_NETLINK};
  if (bind(nl, (struct sockaddr *)&local, sizeof local) < 0) die("netlink", strerror(errno));

  char step[160];
  for (int i = 2; i < argc;) {
    const char *op = argv[i];
    int need = strcmp(op, "up") == 0 ? 1 : strcmp(op, "defaults") == 0 ? 0
      : strcmp(op, "addr") == 0 || strcmp(op, "route") == 0 ? 2 : -1;
    if (need < 0 || i + need > argc - 1) die(op, "unknown operation or missing argument");
    if (need == 0) snprintf(step, sizeof step, "reading the default routes");
    else if (need == 1) snprintf(step, sizeof step, "setting %.20s up", argv[i + 1]);
    else if (op[0] == 'a') snprintf(step, sizeof step, "adding address %.50s to %.20s", argv[i + 2], argv[i + 1]);
    else snprintf(step, sizeof step, "adding the default route via %.50s on %.20s", argv[i + 2], argv[i + 1]);
    if (strcmp(op, "up") == 0) link_up(step, argv[i + 1]);
    else if (strcmp(op, "addr") == 0) add_addr(step, argv[i + 1], argv[i + 2]);
    else if (strcmp(op, "route") == 0) add_default(step, argv[i + 1], argv[i + 2]);
    else printf("ipv4 %d ipv6 %d\n", has_default(AF_INET), has_default(AF_INET6));
    i += 1 + need;
  }
  return 0;
}
