// A network's endpoints and lookup indexes packed into a few typed arrays. The registry parser
// thread builds them endpoint by endpoint as it validates a file and moves them to the daemon's
// thread (no copy); the daemon's heap then holds no object per endpoint, so a large file rewritten every few seconds gives the
// garbage collector nothing to mark or move (as objects, every reload would cost a full collection
// that grows with the endpoints, on the thread that answers DNS). Endpoints are decoded on demand, when a
// name that is not yet in a view's memo is looked up.
import { randomInt } from 'node:crypto';
import { MessageChannel } from 'node:worker_threads';
import { NsdnsError } from '../errors.js';
import type { NameEntry } from './compiled.js';
import { derivedId, idKey, isLongId, SHORT_ID_LENGTH } from './ids.js';
import type { Endpoint } from './types.js';

/** An open-addressing hash table from ASCII keys to entries, in typed arrays only. */
export interface PackedIndexData {
  /** Slot → key number + 1 (0: empty); the length is a power of two, at least twice the keys. */
  slots: Int32Array;
  /** Key k is keyBytes[keyStarts[k] .. keyStarts[k + 1]) (lower-case names and canonical addresses: ASCII). */
  keyStarts: Uint32Array;
  keyBytes: Uint8Array;
  /** Key k names endpoints lists[listStarts[k] .. listStarts[k + 1]). */
  listStarts: Uint32Array;
  lists: Uint32Array;
  /**
   * 1 when key k's first holder holds it as its own name or id (NameEntry.own), 0 when it is an
   * alias (or an address) of all its holders.
   */
  own: Uint8Array;
  /** One element: the table's hash seed. */
  seed: Uint32Array;
}

/** One network as the parser hands it over (its arrays moved to the daemon, not copied). */
export interface PackedTables {
  /** Endpoint i is the JSON text endpointBytes[endpointStarts[i] .. endpointStarts[i + 1]), its `network` left out. */
  endpointStarts: Uint32Array;
  endpointBytes: Uint8Array;
  names: PackedIndexData;
  addresses: PackedIndexData;
}

/** The buffers under a network's tables, each once (what moves them, to the daemon or away). */
export function tableBuffers(t: PackedTables): ArrayBuffer[] {
  const arrays = [t.endpointStarts, t.endpointBytes, ...Object.values(t.names), ...Object.values(t.addresses)] as ArrayBufferView[];
  return [...new Set(arrays.map((a) => a.buffer).filter((b): b is ArrayBuffer => b instanceof ArrayBuffer && b.byteLength > 0))];
}

/** Every offset and index in range, else throws: a packing bug becomes a refused file, never a bad answer. */
export function checkTables(t: PackedTables): void {
  const count = t.endpointStarts.length - 1;
  const bad = () => { throw new Error('packed tables: an index is out of range'); };
  const ascending = (starts: Uint32Array, end: number) => {
    if (starts.length === 0 || starts[0] !== 0 || starts[starts.length - 1] !== end) bad();
    for (let i = 1; i < starts.length; i++) if (starts[i] < starts[i - 1]) bad();
  };
  if (count < 0) bad();
  ascending(t.endpointStarts, t.endpointBytes.length);
  for (const ix of [t.names, t.addresses]) {
    const keys = ix.keyStarts.length - 1;
    if (keys < 0 || ix.listStarts.length !== keys + 1 || ix.own.length !== keys) bad();
    const size = ix.slots.length;
    // A power of two with a free slot (every probe sequence ends), and no long run.
    if (size === 0 || (size & (size - 1)) !== 0 || size <= keys || ix.seed.length !== 1 || longestRun(ix.slots) > MAX_RUN) bad();
    ascending(ix.keyStarts, ix.keyBytes.length);
    ascending(ix.listStarts, ix.lists.length);
    for (const s of ix.slots) if (s < 0 || s > keys) bad();
    for (const e of ix.lists) if (e >= count) bad();
    for (const o of ix.own) if (o > 1) bad();
  }
}

/**
 * A seeded hash over a key's UTF-16 code units.
 * Seeded per network with a random value, so a file's author cannot choose names that all land
 * in one run of the table (every lookup of a missing name would walk it); the parser also checks
 * the longest run (MAX_RUN) and draws another seed when it is too long.
 */
function hashKey(key: string, seed: number): number {
  let h = seed ^ key.length;
  for (let i = 0; i < key.length; i++) {
    h = Math.imul(h ^ key.charCodeAt(i), 0x5bd1e995);
    h ^= h >>> 13;
  }
  return finish32(h);
}

function finish32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The longest run of occupied slots a table may have (a lookup of a missing key walks one). */
export const MAX_RUN = 128;

function longestRun(slots: Int32Array): number {
  let longest = 0;
  let run = 0;
  // Twice round: a run may wrap past the end.
  for (let i = 0; i < slots.length * 2; i++) {
    run = slots[i % slots.length] !== 0 ? run + 1 : 0;
    if (run > longest) longest = run;
    if (run >= slots.length) break;
  }
  return longest;
}

/**
 * Builds one packed index key by key, in typed arrays only (a parser packing 90 000 endpoints
 * makes no object per key). The rules are NetworkBuilder's: a key's holders in the order they came,
 * each once, and its own endpoint the one that created it with an own name or id. Each holder also
 * keeps the kinds of key it holds it as (bits the caller chooses: NameRules checks names with them).
 */
export class IndexWriter {
  private slots: Int32Array;
  private keyStarts: Uint32Array;
  private keyBytes: Uint8Array;
  private own: Uint8Array;
  /**
   * Holders as chains, newest first (finish() lists them in the order they came): the newest item
   * per key, then per item its endpoint, kinds and the item before it.
   */
  private newest: Int32Array;
  private itemEndpoint: Uint32Array;
  private itemKinds: Uint8Array;
  private itemNext: Int32Array;
  private keys = 0;
  private items = 0;
  private seed = randomSeed();

  /**
   * `keys`: how many keys to make room for (it grows past that): a large file's count known
   * beforehand spares the copies each doubling makes, and the room they leave unused.
   */
  constructor(keys = 32, keyBytes = keys * 8) {
    const n = Math.max(32, Math.ceil(keys));
    this.slots = new Int32Array(Math.max(64, 2 ** Math.ceil(Math.log2(n * 2 + 1))));
    this.keyStarts = new Uint32Array(n + 1);
    this.keyBytes = new Uint8Array(Math.max(256, Math.ceil(keyBytes)));
    this.own = new Uint8Array(n);
    this.newest = new Int32Array(n);
    this.itemNext = new Int32Array(n);
    this.itemEndpoint = new Uint32Array(n);
    this.itemKinds = new Uint8Array(n);
  }

  /** Adds `endpoint` as a holder of `key` (kinds OR-ed into its item); returns the key's number. */
  add(key: string, endpoint: number, isOwn: boolean, kinds = 0): number {
    const k = this.find(key);
    if (k < 0) return this.insert(key, endpoint, isOwn, kinds);
    // An endpoint's keys are all added before the next endpoint's: if it holds k, it is k's newest holder.
    const newest = this.newest[k];
    if (this.itemEndpoint[newest] === endpoint) {
      this.itemKinds[newest] |= kinds;
      return k;
    }
    const item = this.item(endpoint, kinds);
    this.itemNext[item] = newest;
    this.newest[k] = item;
    return k;
  }

  /** The key number of `key`, or -1. */
  find(key: string): number {
    return findKey(this.slots, this.keyStarts, this.keyBytes, this.seed, key);
  }

  get keyCount(): number {
    return this.keys;
  }

  keyText(k: number): string {
    return keyText(this.keyBytes, this.keyStarts, k);
  }

  /** Key k's holders in the order they came, with the kinds each holds it as. */
  forEachHolder(k: number, visit: (endpoint: number, kinds: number) => void): void {
    const items: number[] = [];
    for (let item = this.newest[k]; item >= 0; item = this.itemNext[item]) items.push(item);
    for (let i = items.length - 1; i >= 0; i--) visit(this.itemEndpoint[items[i]], this.itemKinds[items[i]]);
  }

  finish(): PackedIndexData {
    const count = this.keys;
    const listStarts = new Uint32Array(count + 1);
    const lists = new Uint32Array(this.items);
    let at = 0;
    for (let k = 0; k < count; k++) {
      for (let item = this.newest[k]; item >= 0; item = this.itemNext[item]) at++;
      listStarts[k + 1] = at;
      // Newest first in the chain, so filled from the end of the key's list.
      let to = at;
      for (let item = this.newest[k]; item >= 0; item = this.itemNext[item]) lists[--to] = this.itemEndpoint[item];
    }
    // A run this long by chance is rare (load factor at most 1/2): draw other seeds a few times.
    for (let tries = 0; longestRun(this.slots) > MAX_RUN; tries++) {
      if (tries === 8) throw new Error(`too many names hash alike (a run of ${longestRun(this.slots)} slots); refused`);
      this.seed = randomSeed();
      this.rehash(this.slots.length);
    }
    return {
      slots: this.slots, keyStarts: fit(this.keyStarts, count + 1), keyBytes: fit(this.keyBytes, this.keyStarts[count]),
      listStarts, lists, own: fit(this.own, count), seed: Uint32Array.of(this.seed),
    };
  }

  private insert(key: string, endpoint: number, isOwn: boolean, kinds: number): number {
    const k = this.keys++;
    if (k + 1 >= this.own.length) {
      const size = this.own.length * 2;
      this.keyStarts = grown(this.keyStarts, size + 1);
      this.own = grown(this.own, size);
      this.newest = grown(this.newest, size);
    }
    let at = this.keyStarts[k];
    if (at + key.length > this.keyBytes.length) this.keyBytes = grown(this.keyBytes, Math.max(this.keyBytes.length * 2, at + key.length));
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      // Names pass the DNS-name check and addresses are canonical text: a wider character is a bug.
      if (c > 0x7f) throw new Error('registry key is not ASCII');
      this.keyBytes[at++] = c;
    }
    this.keyStarts[k + 1] = at;
    this.own[k] = isOwn ? 1 : 0;
    const item = this.item(endpoint, kinds);
    this.itemNext[item] = -1;
    this.newest[k] = item;
    if (this.keys * 2 > this.slots.length) this.rehash(this.slots.length * 2);
    else this.place(k, hashKey(key, this.seed));
    return k;
  }

  private item(endpoint: number, kinds: number): number {
    const item = this.items++;
    if (item >= this.itemEndpoint.length) {
      this.itemEndpoint = grown(this.itemEndpoint, this.itemEndpoint.length * 2);
      this.itemKinds = grown(this.itemKinds, this.itemKinds.length * 2);
      this.itemNext = grown(this.itemNext, this.itemNext.length * 2);
    }
    this.itemEndpoint[item] = endpoint;
    this.itemKinds[item] = kinds;
    return item;
  }

  private place(k: number, hash: number): void {
    const mask = this.slots.length - 1;
    let slot = hash & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = k + 1;
  }

  /** Places every key again (a larger table, or a new seed): rare once the writer is sized beforehand. */
  private rehash(size: number): void {
    this.slots = new Int32Array(size);
    for (let k = 0; k < this.keys; k++) this.place(k, hashKey(keyText(this.keyBytes, this.keyStarts, k), this.seed));
  }
}

/**
 * The first `used` elements of an array that is done growing, on a buffer of their own: the
 * array's own buffer when little of it is unused (no copy), else a copy of the part used.
 */
function fit<T extends Int32Array | Uint32Array | Uint8Array>(array: T, used: number): T {
  return (array.length - used <= array.length / 4 ? array.subarray(0, used) : array.slice(0, used)) as T;
}

function randomSeed(): number {
  return randomInt(0x100000000) >>> 0;
}

function grown<T extends Int32Array | Uint32Array | Uint8Array>(array: T, size: number): T {
  const bigger = new (array.constructor as new (n: number) => T)(size);
  bigger.set(array);
  return bigger;
}

/** The key number of `key` in a table, or -1: the one probe loop of the writer and the readers. */
function findKey(slots: Int32Array, keyStarts: Uint32Array, keyBytes: Uint8Array, seed: number, key: string): number {
  // Released tables (PackedEndpoints.release) read as empty: nothing is found, and no probe loops.
  if (slots.length === 0) return -1;
  const mask = slots.length - 1;
  for (let slot = hashKey(key, seed) & mask; ; slot = (slot + 1) & mask) {
    const k = slots[slot] - 1;
    if (k < 0 || keyEquals(keyStarts, keyBytes, k, key)) return k;
  }
}

/** Key k as a string (ASCII bytes): when every key is placed again, and for messages. */
function keyText(keyBytes: Uint8Array, keyStarts: Uint32Array, k: number): string {
  return String.fromCharCode(...keyBytes.subarray(keyStarts[k], keyStarts[k + 1]));
}

function keyEquals(keyStarts: Uint32Array, keyBytes: Uint8Array, k: number, key: string): boolean {
  const start = keyStarts[k];
  if (keyStarts[k + 1] - start !== key.length) return false;
  for (let i = 0; i < key.length; i++) if (keyBytes[start + i] !== key.charCodeAt(i)) return false;
  return true;
}

/**
 * Endpoints as JSON text, one after the other, appended as they are validated, without what
 * decoding restores: the network's name, empty lists, and an id derived from the network and
 * endpoint names (a file's usual case).
 */
export class EndpointTextWriter {
  private starts: Uint32Array;
  private bytes: Uint8Array;
  private count = 0;
  private readonly encoder = new TextEncoder();

  /** `endpoints`, `bytes`: room to make beforehand (IndexWriter's constructor says why). */
  constructor(private readonly network: string, { endpoints = 1024, bytes = 64 * 1024 } = {}) {
    this.starts = new Uint32Array(Math.ceil(endpoints) + 1);
    this.bytes = new Uint8Array(Math.ceil(bytes));
  }

  append(e: Endpoint): void {
    const text = JSON.stringify({
      ...e, network: undefined, id: e.id === derivedId('endpoint', this.network, e.name) ? undefined : e.id,
      aliases: e.aliases.length > 0 ? e.aliases : undefined, ipv6: e.ipv6.length > 0 ? e.ipv6 : undefined,
      upstreams: e.upstreams.length > 0 ? e.upstreams : undefined,
    });
    const at = this.starts[this.count];
    // At most 3 bytes per UTF-16 unit.
    if (at + text.length * 3 > this.bytes.length) this.bytes = grown(this.bytes, Math.max(this.bytes.length * 2, at + text.length * 3));
    const { written } = this.encoder.encodeInto(text, this.bytes.subarray(at));
    if (this.count + 1 >= this.starts.length) this.starts = grown(this.starts, this.starts.length * 2);
    this.starts[++this.count] = at + written;
  }

  /** Endpoint i as appended (decoded again). */
  endpoint(i: number): Endpoint {
    return decodeEndpoint(Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength), this.starts[i], this.starts[i + 1], this.network);
  }

  finish(): Pick<PackedTables, 'endpointStarts' | 'endpointBytes'> {
    return { endpointStarts: fit(this.starts, this.count + 1), endpointBytes: fit(this.bytes, this.starts[this.count]) };
  }
}

/** One endpoint's packed text as an Endpoint: what EndpointTextWriter left out restored. */
function decodeEndpoint(text: Buffer, start: number, end: number, network: string): Endpoint {
  const e = JSON.parse(text.toString('utf8', start, end)) as Endpoint;
  e.network = network;
  e.id ??= derivedId('endpoint', network, e.name);
  e.aliases ??= NONE;
  e.ipv6 ??= NONE;
  e.upstreams ??= NONE;
  return e;
}

/** Holder lists longer than this are kept decoded (PackedIndex.shared). */
const SHARED_LIST = 32;

/** Decoded endpoints kept for reuse (answers memoize per view; this spares decoding for the next view). */
const DECODED_LIMIT = 4096;
const NONE: string[] = Object.freeze([]) as unknown as string[];

/**
 * Endpoints deserialized from a state file or the parser's reply each carry their own copy of
 * the network's name and their own empty lists: one shared value instead, so a large state
 * holds far fewer objects.
 * Here beside NONE, which decoding packed text shares the same way (compiled.ts imports both ways).
 */
export function shareCommonValues(e: Endpoint, network: string): void {
  if (e.network === network) e.network = network;
  if (e.aliases.length === 0) e.aliases = NONE;
  if (e.ipv6.length === 0) e.ipv6 = NONE;
  if (e.upstreams.length === 0) e.upstreams = NONE;
}

/** The daemon's side: endpoints and both indexes read straight from the transferred arrays. */
export class PackedEndpoints {
  readonly count: number;
  readonly names: PackedNames;
  readonly byAddress: PackedAddresses;
  private readonly text: Buffer;
  private readonly decoded = new Map<number, Endpoint>();

  constructor(private readonly tables: PackedTables, private readonly network: string) {
    this.count = tables.endpointStarts.length - 1;
    const bytes = tables.endpointBytes;
    this.text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.names = new PackedNames(tables.names, this);
    this.byAddress = new PackedAddresses(tables.addresses, this);
  }

  endpoint(i: number): Endpoint {
    let e = this.decoded.get(i);
    if (e === undefined) {
      e = decodeEndpoint(this.text, this.tables.endpointStarts[i], this.tables.endpointStarts[i + 1], this.network);
      if (this.decoded.size >= DECODED_LIMIT) this.decoded.clear();
      this.decoded.set(i, e);
    }
    return e;
  }

  /** Every endpoint, decoded afresh (for commands such as inspect; never on a query's path). */
  all(): Endpoint[] {
    if (this.released) throw new NsdnsError('ERR_CONFLICT', `network "${this.network}" was replaced while it was being read; try again`);
    const out: Endpoint[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.endpoint(i));
    return out;
  }

  private released = false;

  /**
   * Gives the tables' memory back now (the registry calls this when a newer version replaces
   * them): the buffers are moved into a message that is never received, so the next turns free
   * them, where the garbage collector of the daemon's heap, which allocates little, would keep a
   * large file's replaced versions for many reloads. Lookups in released tables find nothing.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    const { port1, port2 } = new MessageChannel();
    try {
      port1.postMessage(null, tableBuffers(this.tables));
    } catch {
      // A buffer that cannot be moved (not ours alone): the garbage collector frees it, later.
    } finally {
      port1.close();
      port2.close();
    }
  }
}

/** Lookups in one packed index: key number for a string, or -1. */
class PackedIndex {
  private readonly seed: number;
  /**
   * Decoded holder lists of names many endpoints share (a scaled service's alias): every distinct
   * `_x._tcp.pool` asked would otherwise decode them all again, which for a large set
   * holds the event loop for a visible time.
   */
  private readonly shared = new Map<number, readonly Endpoint[]>();

  constructor(protected readonly data: PackedIndexData, protected readonly endpoints: PackedEndpoints) {
    this.seed = data.seed[0];
  }

  protected find(key: string): number {
    return findKey(this.data.slots, this.data.keyStarts, this.data.keyBytes, this.seed, key);
  }

  protected holders(k: number): readonly Endpoint[] {
    const { listStarts, lists } = this.data;
    const shared = listStarts[k + 1] - listStarts[k] > SHARED_LIST;
    const kept = shared ? this.shared.get(k) : undefined;
    if (kept) return kept;
    const out: Endpoint[] = [];
    for (let i = listStarts[k]; i < listStarts[k + 1]; i++) out.push(this.endpoints.endpoint(lists[i]));
    if (shared) this.shared.set(k, out);
    return out;
  }
}

class PackedNames extends PackedIndex {
  has(key: string): boolean {
    return this.find(key) >= 0 || this.longId(key) !== undefined;
  }

  get(key: string): NameEntry | undefined {
    const k = this.find(key);
    if (k < 0) {
      const e = this.longId(key);
      return e === undefined ? undefined : { endpoints: [e], own: e };
    }
    const endpoints = this.holders(k);
    // The first holder, the same object as in `endpoints` (the view compares them).
    return { endpoints, own: this.data.own[k] === 1 ? endpoints[0] : undefined };
  }

  /**
   * The endpoint whose id is `key`, a long id (ids.ts): found by its short id, which every
   * endpoint with a long id is indexed by, and checked whole (ids are unique on a network). It
   * decodes every holder of that short id: a query cannot ask for a long id (a label holds at most
   * 63 characters), only the control API can, where decoding a file's ids that share a prefix is
   * no matter.
   */
  private longId(key: string): Endpoint | undefined {
    if (!isLongId(key)) return undefined;
    const k = this.find(key.slice(0, SHORT_ID_LENGTH));
    if (k < 0) return undefined;
    return this.holders(k).find((e) => idKey(e.id) === key);
  }
}

class PackedAddresses extends PackedIndex {
  get(key: string): readonly Endpoint[] | undefined {
    const k = this.find(key);
    return k < 0 ? undefined : this.holders(k);
  }
}
