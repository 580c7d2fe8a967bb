// What the DNS servers count about their clients, for metrics: datagrams from clients a listener
// drops, flood pauses and refused TCP connections. The server's own counters, not the resolver's:
// they are about sockets and who may use them, never about an answer.

export class ListenerStats {
  /** Datagrams from clients a listener does not reply to at all (ClientPolicy.reachable). */
  notAllowed = 0;
  /** Times a UDP socket was not read for a while because what it carried went unanswered (flood-gate.ts). */
  floodPauses = 0;
  /** TCP connections refused, by the limit that refused them (or not-allowed). */
  readonly tcpRefused = { 'per-client': 0, 'per-listener': 0, 'daemon-wide': 0, 'not-allowed': 0 };
}
