// A network's endpoints and lookup indexes packed into a few typed arrays. The registry worker
// builds them from a parsed file and transfers them to the daemon without copying; the daemon's
// heap then holds no object per endpoint, so a large file rewritten every few seconds gives the
// garbage collector nothing to mark or move (90 000 endpoints as objects cost a 10-20 ms full
// collection per reload, on the thread that answers DNS). Endpoints are decoded on demand, when a
// name that is not yet in a view's memo is looked up.
import type { NameEntry } from './compiled.js';
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
  /** Names only: the endpoint whose own name (or id) key k is, -1 for an alias. */
  own: Int32Array;
}

/** What the worker transfers for one network. */
export interface PackedTables {
  /** Endpoint i is the JSON text endpointBytes[endpointStarts[i] .. endpointStarts[i + 1]), its `network` left out. */
  endpointStarts: Uint32Array;
  endpointBytes: Uint8Array;
  names: PackedIndexData;
  addresses: PackedIndexData;
}

/** The buffers to list as transferred when posting `tables`. */
export function transferList(tables: PackedTables): ArrayBuffer[] {
  const arrays = [tables.endpointStarts, tables.endpointBytes, ...Object.values(tables.names), ...Object.values(tables.addresses)];
  return arrays.map((a) => a.buffer as ArrayBuffer);
}

/** FNV-1a over UTF-16 code units: the same value for a JS string and for its ASCII bytes. */
function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Packs a compiled index (key → endpoints, and for names the endpoint a key is the own name of).
 * `indexOf` maps an endpoint to its number in the packed endpoint list.
 */
export function packIndex(entries: ReadonlyMap<string, NameEntry | readonly Endpoint[]>, indexOf: ReadonlyMap<Endpoint, number>): PackedIndexData {
  const count = entries.size;
  let keyLength = 0;
  let listLength = 0;
  for (const [key, value] of entries) {
    keyLength += key.length;
    listLength += ('endpoints' in value ? value.endpoints : value).length;
  }
  let size = 8;
  while (size < count * 2) size *= 2;
  const data: PackedIndexData = {
    slots: new Int32Array(size), keyStarts: new Uint32Array(count + 1), keyBytes: new Uint8Array(keyLength),
    listStarts: new Uint32Array(count + 1), lists: new Uint32Array(listLength), own: new Int32Array(count),
  };
  let k = 0;
  let keyAt = 0;
  let listAt = 0;
  for (const [key, value] of entries) {
    for (let i = 0; i < key.length; i++) {
      const c = key.charCodeAt(i);
      // Names pass the DNS-name check and addresses are canonical text: a wider character is a bug.
      if (c > 0x7f) throw new Error('registry key is not ASCII');
      data.keyBytes[keyAt++] = c;
    }
    data.keyStarts[k + 1] = keyAt;
    const holders = 'endpoints' in value ? value.endpoints : value;
    for (const e of holders) data.lists[listAt++] = indexOf.get(e)!;
    data.listStarts[k + 1] = listAt;
    data.own[k] = 'own' in value && value.own !== undefined ? indexOf.get(value.own)! : -1;
    let slot = hashKey(key) & (size - 1);
    while (data.slots[slot] !== 0) slot = (slot + 1) & (size - 1);
    data.slots[slot] = k + 1;
    k++;
  }
  return data;
}

/** Endpoints as JSON text, one after the other (their network's name is the network's, left out). */
export function packEndpoints(endpoints: readonly Endpoint[]): Pick<PackedTables, 'endpointStarts' | 'endpointBytes'> {
  const encoder = new TextEncoder();
  const texts = endpoints.map((e) => encoder.encode(JSON.stringify({ ...e, network: undefined })));
  const endpointStarts = new Uint32Array(endpoints.length + 1);
  let total = 0;
  texts.forEach((t, i) => { total += t.length; endpointStarts[i + 1] = total; });
  const endpointBytes = new Uint8Array(total);
  texts.forEach((t, i) => endpointBytes.set(t, endpointStarts[i]));
  return { endpointStarts, endpointBytes };
}

/** Decoded endpoints kept for reuse (answers memoize per view; this spares decoding for the next view). */
const DECODED_LIMIT = 4096;
const NONE: string[] = Object.freeze([]) as unknown as string[];

/**
 * Endpoints deserialized from a worker, a state file or packed text each carry their own copy of
 * the network's name and their own empty lists: one shared value instead (~30 % fewer objects).
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
      e = JSON.parse(this.text.toString('utf8', this.tables.endpointStarts[i], this.tables.endpointStarts[i + 1])) as Endpoint;
      e.network = this.network;
      shareCommonValues(e, this.network);
      if (this.decoded.size >= DECODED_LIMIT) this.decoded.clear();
      this.decoded.set(i, e);
    }
    return e;
  }

  /** Every endpoint, decoded afresh (for commands such as inspect; never on a query's path). */
  all(): Endpoint[] {
    const out: Endpoint[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.endpoint(i));
    return out;
  }
}

/** Lookups in one packed index: key number for a string, or -1. */
class PackedIndex {
  constructor(protected readonly data: PackedIndexData, protected readonly endpoints: PackedEndpoints) {}

  protected find(key: string): number {
    const { slots, keyStarts, keyBytes } = this.data;
    const mask = slots.length - 1;
    for (let slot = hashKey(key) & mask; ; slot = (slot + 1) & mask) {
      const k = slots[slot] - 1;
      if (k < 0) return -1;
      const start = keyStarts[k];
      if (keyStarts[k + 1] - start !== key.length) continue;
      let i = 0;
      while (i < key.length && keyBytes[start + i] === key.charCodeAt(i)) i++;
      if (i === key.length) return k;
    }
  }

  protected holders(k: number): Endpoint[] {
    const { listStarts, lists } = this.data;
    const out: Endpoint[] = [];
    for (let i = listStarts[k]; i < listStarts[k + 1]; i++) out.push(this.endpoints.endpoint(lists[i]));
    return out;
  }

  /** Position in holders(k) of endpoint number `endpoint`, or -1. */
  protected position(k: number, endpoint: number): number {
    const { listStarts, lists } = this.data;
    for (let i = listStarts[k]; i < listStarts[k + 1]; i++) if (lists[i] === endpoint) return i - listStarts[k];
    return -1;
  }
}

class PackedNames extends PackedIndex {
  has(key: string): boolean {
    return this.find(key) >= 0;
  }

  get(key: string): NameEntry | undefined {
    const k = this.find(key);
    if (k < 0) return undefined;
    const endpoints = this.holders(k);
    // The same object as in `endpoints` (the view compares them), even if the decode cache was emptied meanwhile.
    const own = this.data.own[k] < 0 ? -1 : this.position(k, this.data.own[k]);
    return { endpoints, own: own < 0 ? undefined : endpoints[own] };
  }
}

class PackedAddresses extends PackedIndex {
  get(key: string): readonly Endpoint[] | undefined {
    const k = this.find(key);
    return k < 0 ? undefined : this.holders(k);
  }
}
