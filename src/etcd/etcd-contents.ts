// What a shared registry in etcd holds, key by key, and the network records made from it. Pure
// data, no I/O: the source (etcd-source.ts) feeds it puts and deletes and asks for the records of
// the networks they touched. Every value is checked here, at the boundary: its size, its JSON and
// its fields (registry/document.ts: a network's and an endpoint's DNS fields only). A value that
// fails is reported once, by its key and the problem, never by its content; what the key held
// before goes with it, and the rest of its network stays. What is held is bounded too (keys and
// bytes): one writer that floods the prefix cannot exhaust this daemon's memory.
import { printable } from '../registry/fields.js';
import { remoteEndpoint, remoteNetwork } from '../registry/document.js';
import { isServiceLabel } from '../wire/names.js';
import type { Endpoint, Network, NetworkRecord } from '../registry/types.js';
import { errorMessage } from '../errors.js';

/** One key as etcd gives it: its value's bytes, the lease it is tied to ('0': none), the revision that wrote it. */
export interface KeyValue {
  key: string;
  value: Uint8Array;
  lease: string;
  modRevision: string;
}

/** What is kept of every key held: the lease it had, and the revision of the value held. */
export interface HeldKey {
  lease: string;
  modRevision: string;
  /** What the key costs against maxHeldBytes: its name and the value kept. */
  bytes: number;
}

export type KeyKind =
  | { kind: 'network'; network: string }
  | { kind: 'endpoint'; network: string; node: string; endpoint: string }
  | { kind: 'ignored' };

/** The most keys and bytes (keys and values) held from one shared registry, unless told otherwise. */
export const MAX_HELD_KEYS = 200_000;
export const MAX_HELD_BYTES = 64 * 1024 * 1024;

/** Node names and endpoint ids in keys: what a host name or a container id is made of. */
const PART = /^[A-Za-z0-9_.-]{1,128}$/;

/** Which of PREFIX/networks/<network> and PREFIX/endpoints/<network>/<node>/<endpoint> `key` is. */
export function keyKind(prefix: string, key: string): KeyKind {
  if (!key.startsWith(`${prefix}/`)) return { kind: 'ignored' };
  const parts = key.slice(prefix.length + 1).split('/');
  if (parts[0] === 'networks' && parts.length === 2 && isServiceLabel(parts[1])) return { kind: 'network', network: parts[1] };
  if (parts[0] === 'endpoints' && parts.length === 4 && isServiceLabel(parts[1]) && PART.test(parts[2]) && PART.test(parts[3]) && parts[3] !== '.' && parts[3] !== '..') {
    return { kind: 'endpoint', network: parts[1], node: parts[2], endpoint: parts[3] };
  }
  return { kind: 'ignored' };
}

interface EndpointEntry {
  node: string;
  id: string;
  lease: string;
  /** The value's JSON, checked against the network's definition when there is one. */
  data: unknown;
  /** The endpoint made from `data` under the current definition, or the problem found (reported once). */
  checked?: Endpoint | { problem: string };
}

interface NetworkEntry {
  /** The network's own key: its definition (or the problem with it), and its lease. */
  definition?: { network?: Network; lease: string };
  endpoints: Map<string, EndpointEntry>;
}

export interface ContentsOptions {
  prefix: string;
  /** Larger values are refused. */
  maxValueBytes: number;
  /** The most keys held (MAX_HELD_KEYS): further new keys are refused, said once until there is room again. */
  maxHeldKeys?: number;
  /** The most bytes of keys and values held (MAX_HELD_BYTES), likewise. */
  maxHeldBytes?: number;
  /** Endpoints of this node are skipped (the daemon serves its own from its own state). */
  ownNode?: string;
  /** A key whose value is refused: its name and the problem, both escaped and bounded. */
  onProblem(key: string, problem: string): void;
}

/** A network as this registry serves it, and the names more than one endpoint holds as their own. */
export interface NetworkContents {
  record: NetworkRecord;
  /** Own names (lower case) held by endpoints of more than one node: each answers every holder. */
  sharedNames: string[];
}

export class EtcdContents {
  private readonly networks = new Map<string, NetworkEntry>();
  /** Every key held (valid or not): what a resynchronisation compares with etcd. */
  private readonly held = new Map<string, HeldKey>();
  private heldBytes = 0;
  /** A key was refused for want of room, and said; said again only after a delete made room. */
  private full = false;

  constructor(private readonly options: ContentsOptions) {}

  /** Every key held. */
  get keys(): ReadonlyMap<string, HeldKey> {
    return this.held;
  }

  /**
   * Takes a key's new value; returns the network it touched, if any. The value a key already
   * holds (the same revision, listed again after an outage) touches nothing.
   */
  put(kv: KeyValue): string | undefined {
    const kind = keyKind(this.options.prefix, kv.key);
    if (kind.kind === 'ignored') return undefined;
    if (kind.kind === 'endpoint' && kind.node === this.options.ownNode) return undefined;
    const before = this.held.get(kv.key);
    if (before?.modRevision === kv.modRevision) return undefined;
    const bytes = kv.key.length + (kv.value.byteLength > this.options.maxValueBytes ? 0 : kv.value.byteLength);
    if (!this.hasRoom(kv.key, before, bytes)) return before === undefined ? undefined : this.delete(kv.key);
    this.heldBytes += bytes - (before?.bytes ?? 0);
    this.held.set(kv.key, { lease: kv.lease, modRevision: kv.modRevision, bytes });
    const data = this.parse(kv);
    const entry = this.entry(kind.network);
    if (kind.kind === 'network') {
      let network: Network | undefined;
      if (data !== undefined) {
        try {
          network = remoteNetwork(data, kv.key);
          if (network.name !== kind.network) throw new Error(`name: "${printable(network.name, 64)}" is not the network its key names`);
        } catch (err) {
          network = undefined;
          this.problem(kv.key, errorMessage(err));
        }
      }
      entry.definition = { network, lease: kv.lease };
      // Endpoints are checked again against the new definition (its subnets).
      for (const e of entry.endpoints.values()) e.checked = undefined;
    } else {
      if (data === undefined) entry.endpoints.delete(kv.key);
      else entry.endpoints.set(kv.key, { node: kind.node, id: kind.endpoint, lease: kv.lease, data });
    }
    return kind.network;
  }

  /** Forgets a key; returns the network it touched, if any. */
  delete(key: string): string | undefined {
    const before = this.held.get(key);
    if (before === undefined) return undefined;
    this.held.delete(key);
    this.heldBytes -= before.bytes;
    this.full = false;
    const kind = keyKind(this.options.prefix, key);
    if (kind.kind === 'ignored') return undefined;
    const entry = this.networks.get(kind.network);
    if (!entry) return undefined;
    if (kind.kind === 'network') {
      entry.definition = undefined;
      for (const e of entry.endpoints.values()) e.checked = undefined;
    } else {
      entry.endpoints.delete(key);
    }
    if (entry.definition === undefined && entry.endpoints.size === 0) this.networks.delete(kind.network);
    return kind.network;
  }

  /**
   * The network as it is to be served, or undefined when it has no valid definition (its
   * endpoints wait for one). Each endpoint's value is checked once per definition.
   */
  network(name: string): NetworkContents | undefined {
    const entry = this.networks.get(name);
    const network = entry?.definition?.network;
    if (!entry || !network) return undefined;
    const endpoints: Endpoint[] = [];
    const nodesOf = new Map<string, Set<string>>();
    for (const [key, e] of entry.endpoints) {
      e.checked ??= this.check(key, e, network);
      if ('problem' in e.checked) continue;
      endpoints.push(e.checked);
      const nodes = nodesOf.get(e.checked.name);
      if (nodes) nodes.add(e.node);
      else nodesOf.set(e.checked.name, new Set([e.node]));
    }
    const sharedNames = [...nodesOf].filter(([, nodes]) => nodes.size > 1).map(([n]) => n).sort();
    return { record: { network, endpoints }, sharedNames };
  }

  /** Networks with a key in the registry (defined or only waited for). */
  get networkNames(): IterableIterator<string> {
    return this.networks.keys();
  }

  private check(key: string, e: EndpointEntry, network: Network): Endpoint | { problem: string } {
    try {
      const data = e.data as { id?: unknown };
      if (typeof data === 'object' && data !== null && !Array.isArray(data) && data.id !== undefined && data.id !== e.id) {
        throw new Error('id: not the endpoint its key names (the last part of the key is the id)');
      }
      const endpoint = remoteEndpoint(typeof data === 'object' && data !== null && !Array.isArray(data) ? { ...data, id: e.id } : data, network, key);
      return endpoint;
    } catch (err) {
      const problem = errorMessage(err);
      this.problem(key, problem);
      return { problem };
    }
  }

  /**
   * Whether `key` may be held at `bytes` (`before`: what it holds now). Refused, it is said once
   * (by this key) until keys are deleted; a refused key is read again when etcd is next listed.
   */
  private hasRoom(key: string, before: HeldKey | undefined, bytes: number): boolean {
    const maxKeys = this.options.maxHeldKeys ?? MAX_HELD_KEYS;
    const maxBytes = this.options.maxHeldBytes ?? MAX_HELD_BYTES;
    const keys = this.held.size + (before === undefined ? 1 : 0);
    const total = this.heldBytes + bytes - (before?.bytes ?? 0);
    if (keys <= maxKeys && total <= maxBytes) return true;
    if (!this.full) {
      this.full = true;
      this.problem(key, `refused, and every further key until some are deleted: this daemon holds at most ${maxKeys} keys and ${maxBytes} bytes of one shared registry (it holds ${this.held.size} keys, ${this.heldBytes} bytes)`);
    }
    return false;
  }

  /** The value's JSON, or undefined (reported) when it is too large or not JSON. */
  private parse(kv: KeyValue): unknown {
    if (kv.value.byteLength > this.options.maxValueBytes) {
      this.problem(kv.key, `the value has ${kv.value.byteLength} bytes, more than the ${this.options.maxValueBytes} a value may have`);
      return undefined;
    }
    try {
      return JSON.parse(Buffer.from(kv.value.buffer, kv.value.byteOffset, kv.value.byteLength).toString('utf8'));
    } catch (err) {
      // JSON.parse's message quotes the text: only where it broke is said.
      const at = /position (\d+)/.exec(errorMessage(err))?.[1];
      this.problem(kv.key, `not valid JSON${at === undefined ? '' : ` (at byte ${at})`}`);
      return undefined;
    }
  }

  /** `message`: the problem alone, or registry/document.ts's "KEY: problem" (the key escaped there). */
  private problem(key: string, message: string): void {
    const named = `${printable(key, 200)}: `;
    this.options.onProblem(printable(key, 200), message.startsWith(named) ? message.slice(named.length) : message);
  }

  private entry(network: string): NetworkEntry {
    let entry = this.networks.get(network);
    if (!entry) {
      entry = { endpoints: new Map() };
      this.networks.set(network, entry);
    }
    return entry;
  }
}
