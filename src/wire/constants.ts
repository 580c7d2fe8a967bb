// Numbers from RFC 1035 §4.1.1 and the IANA DNS parameter registry that the hot path compares
// against. Kept as plain numbers: the fast path never turns them into strings.

export const QTYPE = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, ANY: 255,
} as const;

export const QCLASS_IN = 1;
export const QCLASS_ANY = 255;

export const RCODE = {
  NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5,
  /** Extended RCODE (RFC 6891 §6.1.3): needs the OPT record's upper 8 bits. */
  BADVERS: 16,
} as const;

export const FLAG = {
  QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, AD: 0x0020, CD: 0x0010,
} as const;

export const HEADER_SIZE = 12;
/** RFC 1035 §2.3.4: the UDP limit for a client that sent no EDNS. */
export const CLASSIC_UDP_SIZE = 512;
/** DNS Flag Day 2020: the largest UDP payload worth sending without risking fragmentation. */
export const DEFAULT_MAX_UDP_SIZE = 1232;
export const TCP_MAX_MESSAGE = 65535;
