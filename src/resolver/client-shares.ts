// Each client's fair share of the upstreams (a client is a namespace, or a source address on a
// host listener): exchanges in flight, and a token bucket of exchanges started per second, in which
// a large answer costs more than one. The forwarder asks here before it sends anything upstream.
import { DEFAULT_MAX_UDP_SIZE } from '../wire/constants.js';

/** The limits a share is held to (the forwarder's options). */
export interface ShareLimits {
  /** Most upstream exchanges one client has started and not finished. */
  maxInflightPerClient: number;
  /** Upstream exchanges one client may start per second, with a burst as large; 0: no limit. */
  clientQueriesPerSecond: number;
}

export interface Share {
  inflight: number;
  /** Queries turned away while over the share (for the REFUSED slip). */
  turnedAway: number;
  tokens: number;
  refilledAt: number;
}

/**
 * Answer bytes that count as one query against a client's rate: what one answer may carry over UDP
 * without fragmenting (DNS Flag Day 2020), so a client of ordinary answers is charged nothing more.
 */
export const BYTES_PER_QUERY = DEFAULT_MAX_UDP_SIZE;

/** Queries an answer of `bytes` costs beyond the first. */
export function extraQueries(bytes: number): number {
  return Math.ceil(bytes / BYTES_PER_QUERY) - 1;
}

/** Adds the tokens earned since the last refill, up to the burst (`rate`). */
function refill(share: Share, now: number, rate: number): void {
  share.tokens = Math.min(rate, share.tokens + ((now - share.refilledAt) * rate) / 1000);
  share.refilledAt = now;
}

/** Over UDP, one query in SLIP from a client over its share is answered REFUSED; the rest are dropped. */
export const SLIP = 4;

/** Most clients tracked: spoofed source addresses must not grow the map without bound. */
const MAX_CLIENTS = 4096;

/**
 * Each client's share of the upstreams: exchanges in flight, and a token bucket of exchanges
 * started per second. Cache hits and joined exchanges take nothing from it, unless their answers
 * are large (charge()).
 */
export class ClientShares {
  private readonly shares = new Map<string, Share>();

  /** Clients with an exchange in flight (kept by fetch() as shares go busy and idle). */
  active = 0;

  /** Counts one more query of `client` turned away; returns the count. */
  turnedAway(client: string): number {
    const share = this.shares.get(client);
    return share ? ++share.turnedAway : 1;
  }

  /** Whether take() would succeed now, without taking anything. */
  hasRoom(client: string, options: ShareLimits): boolean {
    const share = this.shares.get(client);
    if (!share) return true;
    if (share.inflight >= options.maxInflightPerClient) return false;
    const rate = options.clientQueriesPerSecond;
    return rate === 0 || share.tokens + ((Date.now() - share.refilledAt) * rate) / 1000 >= 1;
  }

  /**
   * Takes `queries` more from the client's bucket, into debt down to one second's worth: the
   * client's misses are refused until it has paid (at most about a second after).
   */
  charge(client: string, queries: number, rate: number): void {
    if (rate === 0) return;
    const now = Date.now();
    const share = this.shareOf(client, now, rate);
    refill(share, now, rate);
    share.tokens = Math.max(-rate, share.tokens - queries);
  }

  /** The client's share with one exchange taken from it, or undefined when it has none left. */
  take(client: string, options: ShareLimits): Share | undefined {
    const now = Date.now();
    const rate = options.clientQueriesPerSecond;
    const share = this.shareOf(client, now, rate);
    if (share.inflight >= options.maxInflightPerClient) return undefined;
    if (rate > 0) {
      refill(share, now, rate);
      if (share.tokens < 1) return undefined;
      share.tokens--;
    }
    return share;
  }

  private shareOf(client: string, now: number, rate: number): Share {
    let share = this.shares.get(client);
    if (!share) {
      if (this.shares.size >= MAX_CLIENTS) this.evict(now, rate);
      share = { inflight: 0, tokens: rate, refilledAt: now, turnedAway: 0 };
      this.shares.set(client, share);
    }
    return share;
  }

  /**
   * Drops idle shares (nothing in flight, bucket full again: as good as new); when that is not
   * enough, the oldest ones (a flight holds its own share, so its count stays right).
   */
  private evict(now: number, rate: number): void {
    for (const [client, s] of this.shares) {
      if (s.inflight === 0 && (rate === 0 || s.tokens + ((now - s.refilledAt) * rate) / 1000 >= rate)) this.shares.delete(client);
    }
    for (const client of this.shares.keys()) {
      if (this.shares.size <= MAX_CLIENTS / 2) break;
      this.shares.delete(client);
    }
  }
}
