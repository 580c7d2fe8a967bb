// Cache of upstream answers only (local answers are never stored: the registry is the truth).
// Positive answers live for their smallest TTL, negative ones for the SOA's (RFC 2308 §5), both
// capped. Entries are scrubbed replies (src/wire/scrub.ts); a hit is served as a copy made the
// client's, with the TTLs aged by the time spent in the cache. The cache is bounded in bytes, and
// one tenant (a namespace, or a host listener's client address) may hold only a share of them, so
// one namespace asking for large answers cannot grow the daemon or push out everyone else's.
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
  /** Most bytes kept: answers, keys and a fixed overhead per entry. */
  maxBytes: number;
  /** The part of maxBytes (0-1] one tenant may hold. */
  tenantShare: number;
  /** 'network': the networks a client sees are part of the key (resolver.ts), so tenants on other networks never share an entry. */
  scope?: 'shared' | 'network';
}

interface Entry {
  reply: Buffer;
  ttlOffsets: readonly number[];
  storedAt: number;
  tenant: string;
  bytes: number;
}

/** What an entry costs besides its answer and key (the entry object, the LRU's slots): an estimate. */
const ENTRY_OVERHEAD = 200;

/** One tenant's entries, oldest stored first (a Set keeps insertion order), and their bytes. */
interface Holding {
  bytes: number;
  keys: Set<string>;
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
  private readonly tenants = new Map<string, Holding>();
  private readonly tenantLimit: number;

  constructor(readonly options: CacheOptions) {
    this.tenantLimit = Math.floor(options.maxBytes * options.tenantShare);
    this.lru = new LRUCache<string, Entry>({
      max: Math.max(1, options.size), maxSize: options.maxBytes, sizeCalculation: (entry) => entry.bytes,
      ttlAutopurge: false, allowStale: false,
      dispose: (entry, key, reason) => {
        if (reason === 'evict') this.evictions++;
        this.release(entry, key);
      },
    });
  }

  get size(): number {
    return this.lru.size;
  }

  /** Bytes held (expired entries count until they are looked at or pushed out). */
  get bytes(): number {
    return this.lru.calculatedSize;
  }

  /** Bytes one tenant holds. */
  bytesOf(tenant: string): number {
    return this.tenants.get(tenant)?.bytes ?? 0;
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

  /**
   * Stores a reply if it may be cached, on `tenant`'s account (who asked for it first); returns
   * the TTL it got (0 when not stored). A tenant at its share makes room among its own entries,
   * oldest stored first, never among the others'.
   */
  put(key: string, reply: Buffer, info: ReplyInfo, tenant = ''): number {
    if (this.options.size === 0) return 0;
    const ttl = this.ttlFor(info);
    if (ttl <= 0) return 0;
    const bytes = reply.length + key.length + ENTRY_OVERHEAD;
    if (bytes > this.tenantLimit) return 0;
    this.lru.delete(key);
    let holding = this.tenants.get(tenant);
    if (holding) {
      for (const old of holding.keys) {
        if (holding.bytes + bytes <= this.tenantLimit) break;
        this.evictions++;
        this.lru.delete(old);
      }
    }
    const ttlOffsets = info.ttlOffsets;
    // Clamp stored TTLs to what we keep, so a client never sees a TTL outliving our entry.
    const stored = Buffer.from(reply);
    for (const off of ttlOffsets) if (stored.readUInt32BE(off) > ttl) stored.writeUInt32BE(ttl, off);
    this.lru.set(key, { reply: stored, ttlOffsets, storedAt: Date.now(), tenant, bytes }, { ttl: ttl * 1000 });
    holding = this.tenants.get(tenant);
    if (!holding) {
      holding = { bytes: 0, keys: new Set() };
      this.tenants.set(tenant, holding);
    }
    holding.bytes += bytes;
    holding.keys.add(key);
    return ttl;
  }

  clear(): void {
    this.lru.clear();
  }

  /** An entry left the cache (evicted, expired, replaced or deleted): off its tenant's account. */
  private release(entry: Entry, key: string): void {
    const holding = this.tenants.get(entry.tenant);
    if (!holding || !holding.keys.delete(key)) return;
    holding.bytes -= entry.bytes;
    if (holding.keys.size === 0) this.tenants.delete(entry.tenant);
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
