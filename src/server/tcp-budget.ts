// What all TCP listeners of one daemon share: file descriptors and the memory of replies that
// clients have not read yet. Each listener and each client gets a share, so no single client,
// and no single namespace, can take every slot or fill the heap (RFC 7766 §6.2.2 asks servers to
// protect themselves from clients that hold connections or stop reading).

export interface TcpLimits {
  /** An idle connection is closed after this long, ms (RFC 7766 §6.2.3). */
  idleTimeoutMs: number;
  /** A message must arrive whole within this long of its first byte, ms. */
  messageTimeoutMs: number;
  /** Connections on one listener. */
  maxConnections: number;
  /** Connections from one client address on one listener. */
  maxConnectionsPerClient: number;
  /** Connections over all listeners. */
  maxTotalConnections: number;
  /** Unanswered queries on one connection before it stops being read. */
  maxPendingPerConnection: number;
  /** Queries one connection may send before it is closed. */
  maxQueriesPerConnection: number;
  /** Unread reply bytes on one connection before it stops being read. */
  maxUnsentBytes: number;
  /** Unread reply bytes over all connections before every writer stops being read. */
  maxTotalUnsentBytes: number;
}

export class TcpBudget {
  connections = 0;
  unsentBytes = 0;

  constructor(public limits: TcpLimits) {}

  get full(): boolean {
    return this.connections >= this.limits.maxTotalConnections;
  }

  get overMemory(): boolean {
    return this.unsentBytes > this.limits.maxTotalUnsentBytes;
  }
}
