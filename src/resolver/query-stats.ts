// Per-query counters for metrics: plain numbers bumped on the hot path only while enabled, read
// at scrape time (daemon/metrics.ts). Every index comes from a bounded set.
import { LatencyBuckets } from './forwarder.js';
import type { Endpoint } from '../registry/types.js';

/** What count() needs of a listener: whether it serves a namespace (its endpoints) or the host. */
interface CountedListener {
  endpoints(): readonly Endpoint[] | undefined;
}

/** Label values of QueryStats.answers, in index order. */
export const LISTENER_KINDS = ['host', 'namespace'] as const;
export const ANSWER_SOURCES = ['local', 'cache', 'upstream', 'error'] as const;
export const QTYPE_LABELS = ['A', 'AAAA', 'PTR', 'SRV', 'TXT', 'ANY', 'other'] as const;
/** Indexes into ANSWER_SOURCES. */
export const LOCAL = 0;
export const CACHE = 1;
export const UPSTREAM = 2;
export const ERROR = 3;

/** Index into QTYPE_LABELS: a bounded label set, whatever type a client asks for. */
function qtypeIndex(qtype: number): number {
  switch (qtype) {
    case 1: return 0;
    case 28: return 1;
    case 12: return 2;
    case 33: return 3;
    case 16: return 4;
    case 255: return 5;
    default: return 6;
  }
}

/**
 * The per-query counters: plain numbers in typed arrays, bumped on the hot path only while
 * `enabled`, and turned into Prometheus metrics at scrape time (daemon/metrics.ts). Nothing from
 * the network (names, client addresses) is ever kept here: every index is from a bounded set.
 */
export class QueryStats {
  enabled = false;
  /** Answers by [kind][source][qtype][rcode], flattened: see answerIndex(). */
  readonly answers = new Float64Array(LISTENER_KINDS.length * ANSWER_SOURCES.length * QTYPE_LABELS.length * 16);
  /** Messages not answered at all: shorter than a header, or a response. */
  dropped = 0;
  /** Messages answered with a header-only FORMERR/NOTIMP/BADVERS. */
  malformed = 0;
  /** Answer latency of one answer in SAMPLE_EVERY (a clock read per query would cost more than it tells). */
  readonly latency = new LatencyBuckets();
  /** Answers from the registry by the network that answered ('reverse' for PTR, 'other' otherwise). */
  readonly localByNetwork = new Map<string, number>();
  private tick = 0;

  static readonly SAMPLE_EVERY = 8;

  static answerIndex(kind: number, source: number, qtype: number, rcode: number): number {
    return ((kind * ANSWER_SOURCES.length + source) * QTYPE_LABELS.length + qtype) * 16 + rcode;
  }

  /** A start time for one answer in SAMPLE_EVERY, else 0. */
  startTimer(): number {
    return (++this.tick & (QueryStats.SAMPLE_EVERY - 1)) === 0 ? performance.now() : 0;
  }

  /** One more local answer for `network`: a network's name, never a name asked (it becomes a label). */
  countLocal(network: string): void {
    const n = this.localByNetwork.get(network);
    if (n !== undefined) this.localByNetwork.set(network, n + 1);
    else if (this.localByNetwork.size < 4096) this.localByNetwork.set(network, 1);
  }

  count(listener: CountedListener, source: number, qtype: number, reply: Buffer, started: number): void {
    const kind = listener.endpoints() === undefined ? 0 : 1;
    this.answers[QueryStats.answerIndex(kind, source, qtypeIndex(qtype), reply[3] & 0x0f)]++;
    if (started !== 0) this.latency.observe((performance.now() - started) / 1000);
  }
}


/** The ANSWER_SOURCES index of a forwarded answer. */
export function sourceIndex(origin: { source: string }): number {
  return origin.source === 'upstream' ? UPSTREAM : origin.source === 'cache' ? CACHE : origin.source === 'registry' ? LOCAL : ERROR;
}
