// Cache of upstream answers only (local answers are never stored: the registry is the truth).
// Positive answers live for their smallest TTL, negative ones for the SOA's (RFC 2308 §5), both
// capped. Entries are scrubbed replies (src/wire/scrub.ts); a hit is served as a copy made the
// client's, with the TTLs aged by the time spent in the cache.
import { LRUCache } from 'lru-cache';
import { FLAG, RCODE } from '../wire/constants.js';
import type { Query } from '../wire/query.js';
import { readdressScrubbed } from '../wire/scrub.js';
import type { ReplyInfo } from '../wire/records.js';

export interface CacheOptions {
  /** Most entries kept. */
  size: number;
  /** Upper bound on any positive TTL, seconds. */
  maxTtl: number;
  /** Upper bound on negative answers, seconds. */
  maxNegativeTtl: number;
}

interface Entry {
  reply: Buffer;
  ttlOffsets: readonly number[];
  storedAt: number;
}

/**
 * Different names, types, classes, and DO/CD/RD bits never share an entry. One-to-one: `name` is
 * the presentation form with '.', '\\' and non-printables escaped (ASCII lower-cased only), and it
 * comes last, after fields that hold no '|' (callers append only '|'-free fields after it).
 */
export function cacheKey(query: Query): string {
  const bits = (query.edns?.dnssecOk ? 4 : 0) | (query.flags & FLAG.CD ? 2 : 0) | (query.flags & FLAG.RD ? 1 : 0);
  return `${query.qtype}|${query.qclass}|${bits}|${query.name}`;
}

export class AnswerCache {
  private readonly lru: LRUCache<string, Entry>;
  /** Counted always: an integer add is all it costs. Read by the metrics at scrape time. */
  hits = 0;
  misses = 0;
  /** Entries pushed out to make room (not those that expired). */
  evictions = 0;

  constructor(readonly options: CacheOptions) {
    this.lru = new LRUCache<string, Entry>({
      max: Math.max(1, options.size), ttlAutopurge: false, allowStale: false,
      dispose: (_value, _key, reason) => { if (reason === 'evict') this.evictions++; },
    });
  }

  get size(): number {
    return this.lru.size;
  }

  get(key: string, query: Query): Buffer | undefined {
    if (this.options.size === 0) return undefined;
    const entry = this.lru.get(key);
    if (!entry) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    const out = readdressScrubbed(entry.reply, query);
    const age = Math.floor((Date.now() - entry.storedAt) / 1000);
    if (age > 0) {
      for (const off of entry.ttlOffsets) out.writeUInt32BE(Math.max(0, out.readUInt32BE(off) - age), off);
    }
    return out;
  }

  /** Stores a reply if it may be cached; returns the TTL it got (0 when not stored). */
  put(key: string, reply: Buffer, info: ReplyInfo): number {
    if (this.options.size === 0) return 0;
    const ttl = this.ttlFor(info);
    if (ttl <= 0) return 0;
    const ttlOffsets = info.ttlOffsets;
    // Clamp stored TTLs to what we keep, so a client never sees a TTL outliving our entry.
    const stored = Buffer.from(reply);
    for (const off of ttlOffsets) if (stored.readUInt32BE(off) > ttl) stored.writeUInt32BE(ttl, off);
    this.lru.set(key, { reply: stored, ttlOffsets, storedAt: Date.now() }, { ttl: ttl * 1000 });
    return ttl;
  }

  clear(): void {
    this.lru.clear();
  }

  private ttlFor(info: ReplyInfo): number {
    if (info.truncated) return 0;
    if (info.rcode === RCODE.NOERROR && info.answerCount > 0) return Math.min(info.minAnswerTtl ?? 0, this.options.maxTtl);
    // NODATA and NXDOMAIN are cached only with an SOA to say for how long (RFC 2308 §5).
    if ((info.rcode === RCODE.NOERROR || info.rcode === RCODE.NXDOMAIN) && info.negativeTtl !== undefined) {
      return Math.min(info.negativeTtl, this.options.maxNegativeTtl);
    }
    return 0;
  }
}
