// A shared registry in etcd (`--registry etcd://…/PREFIX`) fed into the registry. It lists PREFIX
// once, at one revision, then watches from the next one; a burst of changes is applied in one tick,
// each network it touched compiled once. Queries never read etcd: they read the snapshot this
// feeds.
//
// etcd3 resumes a broken watch from the revision in the last response's header, which can be
// past events it has not delivered, and leaves compaction to the caller; so this source never
// lets it resume. Whenever the watch breaks (etcd gone, a check unanswered, a watch cancelled by
// a compaction), the client is closed, and a new one lists again and applies the difference to
// what is held (a delete made meanwhile is not lost), then watches from the list's revision. While
// etcd is away, the last snapshot keeps serving and the source says since when it is stale.
//
// After etcd was away, deletes of leased keys wait a grace period (held-deletes.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import { connectEtcd, etcdOptions, type EtcdAccess } from './etcd-client.js';
import { EtcdContents, type KeyValue } from './etcd-contents.js';
import { HeldDeletes } from './held-deletes.js';
import { definitionDifference } from './network-definition.js';
import type { EtcdLocation } from './etcd-url.js';

export interface EtcdSourceOptions {
  location: EtcdLocation;
  access: EtcdAccess;
  maxValueBytes: number;
  deleteGraceMs: number;
  checkIntervalMs: number;
  maxBackoffMs: number;
  /** This daemon's node name: its own endpoints are served from its own state, not from etcd. */
  ownNode?: string;
}

/** What `nsdns status` and /readyz say of one shared registry. */
export interface EtcdSourceStatus {
  registry: string;
  /** The first list is done (what etcd held is served). */
  synchronised: boolean;
  /** etcd cannot be reached: the last snapshot serves. */
  stale: boolean;
  staleSince: string | null;
  /** The revision served up to. */
  revision: string | null;
  networks: number;
  keys: number;
  /** Deletes held back after an outage (deleteGraceMs). */
  heldDeletes: number;
  /** Names held as their own by endpoints of several nodes on one network (each answers all). */
  sharedNames: number;
  /** Values refused since start. */
  refused: number;
}

/** Why a session ended: etcd away, etcd cancelled the watch (its revision compacted), or close(). */
type Break = 'outage' | 'cancelled' | 'closed';

/** Keys are listed in pages: a large registry never arrives as one message. */
const PAGE = 256;
const FIRST_BACKOFF_MS = 100;

export class EtcdSource {
  /** The registry source name of the networks this serves. */
  readonly name: string;
  private readonly contents: EtcdContents;
  private closed = false;
  private loop: Promise<void> | undefined;
  private client: Etcd3 | undefined;
  private watcher: Watcher | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private onBreak: ((why: Break) => void) | undefined;
  private synchronised = false;
  private firstSync!: () => void;
  private readonly firstSynced = new Promise<void>((resolve) => { this.firstSync = resolve; });
  private staleSince: number | undefined;
  private revision: bigint | undefined;
  private readonly held: HeldDeletes;
  /** Networks changed since the last flush (one flush per tick). */
  private readonly touched = new Set<string>();
  private flushScheduled = false;
  /** Networks this source has put in the registry. */
  private readonly served = new Set<string>();
  /** Networks another source holds, said once each. */
  private readonly yielded = new Set<string>();
  /** Which source served each of those networks when this one last published it. */
  private readonly ownerSeen = new Map<string, string | undefined>();
  /** Set while this source changes the registry: its own changes are not news to it. */
  private publishing = false;
  private readonly sharedNames = new Map<string, string[]>();
  private refused = 0;
  private readonly refusals = new RefusalLines();

  constructor(private readonly registry: Registry, private readonly log: Logger, private readonly options: EtcdSourceOptions) {
    this.name = `etcd:${options.location.url}`;
    // Certificates and the password file are read now: a bad path stops the daemon at start.
    etcdOptions(options.location, options.access);
    registry.on('change', this.onRegistryChange);
    this.held = new HeldDeletes(options.deleteGraceMs, (keys) => {
      this.log.info({ registry: options.location.url, keys: keys.length }, 'etcd: deletes held back after the outage applied (not put again within the grace period)');
      for (const key of keys) this.touch(this.contents.delete(key));
    });
    this.contents = new EtcdContents({
      prefix: options.location.prefix,
      maxValueBytes: options.maxValueBytes,
      ownNode: options.ownNode,
      onProblem: (key, problem) => {
        this.refused++;
        if (!this.refusals.fresh(key, problem)) return;
        this.log.error({ key, err: { code: 'ERR_REGISTRY_FILE', message: problem } }, 'etcd value refused; the rest of its network is served');
      },
    });
  }

  /** Starts reading; resolves once etcd's content is served, or after `waitMs` if etcd does not answer (it is read when it does). */
  async start(waitMs = 5000): Promise<void> {
    this.loop ??= this.run();
    const giveUp = new AbortController();
    await Promise.race([this.firstSynced, sleep(waitMs, undefined, { signal: giveUp.signal }).catch(() => undefined)]);
    giveUp.abort();
    if (!this.synchronised) this.log.warn({ registry: this.options.location.url }, 'etcd does not answer yet; its networks are served once it does');
  }

  status(): EtcdSourceStatus {
    let shared = 0;
    for (const names of this.sharedNames.values()) shared += names.length;
    return {
      registry: this.options.location.url,
      synchronised: this.synchronised,
      stale: this.staleSince !== undefined,
      staleSince: this.staleSince === undefined ? null : new Date(this.staleSince).toISOString(),
      revision: this.revision === undefined ? null : String(this.revision),
      networks: this.served.size,
      keys: this.contents.keys.size,
      heldDeletes: this.held.size,
      sharedNames: shared,
      refused: this.refused,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.registry.off('change', this.onRegistryChange);
    this.onBreak?.('closed');
    this.wake?.();
    // A list in flight fails at once instead of at its deadline.
    this.client?.close();
    this.held.close();
    await this.loop;
  }

  private async run(): Promise<void> {
    let backoff = FIRST_BACKOFF_MS;
    while (!this.closed) {
      let why: Break;
      try {
        this.client = await connectEtcd(this.options.location, this.options.access);
        why = await this.session(this.client, () => { backoff = FIRST_BACKOFF_MS; });
      } catch (err) {
        why = isCancelled(err) ? 'cancelled' : 'outage';
        if (why === 'outage') this.lost(err);
      } finally {
        this.disconnect();
      }
      if (why === 'closed' || this.closed) break;
      // Not stale: etcd answers. Still after a backoff: a watch etcd refuses at once (no permission)
      // must not make a busy loop of lists.
      if (why === 'cancelled') this.log.info({ registry: this.options.location.url }, 'etcd: the watch was cancelled (it fell behind a compaction); listing again');
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, backoff).unref();
      });
      backoff = Math.min(backoff * 2, this.options.maxBackoffMs);
    }
  }

  /** One connection: list, then watch until it breaks; says why it broke. */
  private async session(client: Etcd3, connected: () => void): Promise<Break> {
    const { revision, listed } = await this.list(client);
    const wasStale = this.staleSince;
    if (wasStale !== undefined) this.held.outageEnded();
    this.removeUnlisted(listed);
    this.revision = revision;
    this.flush();
    const broken = new Promise<Break>((resolve) => { this.onBreak = resolve; });
    const watcher = await client.watch().prefix(`${this.options.location.prefix}/`).startRevision(String(revision + 1n)).create();
    this.watcher = watcher;
    watcher.on('data', (res) => this.onWatch(res));
    // etcd cancels a watch whose next revision it compacted away (etcd3 says only "Watcher canceled").
    watcher.on('error', (err) => this.onBreak?.(isCancelled(err) ? 'cancelled' : 'outage'));
    watcher.on('disconnected', () => this.onBreak?.('outage'));
    this.startChecks(client);
    connected();
    if (wasStale !== undefined) {
      this.staleSince = undefined;
      this.log.info({ registry: this.options.location.url, staleSeconds: Math.round((Date.now() - wasStale) / 1000), revision: String(revision) }, 'etcd reached again; synchronised');
    }
    if (!this.synchronised) {
      this.synchronised = true;
      this.log.info({ registry: this.options.location.url, revision: String(revision), networks: this.served.size, keys: this.contents.keys.size }, 'etcd registry loaded');
      this.firstSync();
    }
    const why = await broken;
    if (why === 'outage') this.lost(new Error('the watch or a check failed'));
    return why;
  }

  /** Every key under the prefix at one revision, a page at a time. */
  /**
   * Lists the prefix at one revision, a page at a time, each page applied as it comes: a prefix
   * flooded with keys never sits whole in memory (what is held is bounded by etcd-contents.ts).
   * Returns the revision and the held keys the list named; deletes wait for removeUnlisted, so a
   * list in progress only ever adds to what is served.
   */
  private async list(client: Etcd3): Promise<{ revision: bigint; listed: Set<string> }> {
    const start = `${this.options.location.prefix}/`;
    const end = `${this.options.location.prefix}0`; // '0' follows '/': the end of the prefix's range
    const listed = new Set<string>();
    let from = start;
    let revision: bigint | undefined;
    for (;;) {
      const range = client.getAll().inRange({ start: from, end }).limit(PAGE);
      if (revision !== undefined) range.revision(String(revision));
      const res = await range.exec();
      revision ??= BigInt(res.header.revision);
      for (const raw of res.kvs) {
        const kv = keyValue(raw);
        this.put(kv);
        if (this.contents.keys.has(kv.key)) listed.add(kv.key);
      }
      if (!res.more || res.kvs.length === 0) return { revision, listed };
      from = `${res.kvs[res.kvs.length - 1].key.toString('utf8')}\0`;
    }
  }

  /** Deletes what is held but was not listed: etcd lost it while this source was not watching. */
  private removeUnlisted(listed: ReadonlySet<string>): void {
    for (const key of [...this.contents.keys.keys()]) if (!listed.has(key)) this.remove(key);
  }

  private onWatch(res: IWatchResponse): void {
    for (const event of res.events) {
      const kv = keyValue(event.kv);
      if (event.type === 'Put') this.put(kv);
      else this.remove(kv.key);
      const revision = BigInt(event.kv.mod_revision);
      if (this.revision === undefined || revision > this.revision) this.revision = revision;
    }
  }

  private put(kv: KeyValue): void {
    this.held.release(kv.key);
    this.touch(this.contents.put(kv));
  }

  private remove(key: string): void {
    const lease = this.contents.keys.get(key)?.lease;
    if (lease === undefined || this.held.hold(key, lease)) return;
    this.touch(this.contents.delete(key));
  }

  private touch(network: string | undefined): void {
    if (network === undefined) return;
    this.touched.add(network);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Compiles every network touched since the last flush, once each. */
  private flush(): void {
    this.flushScheduled = false;
    const networks = [...this.touched];
    this.touched.clear();
    for (const network of networks) this.publish(network);
  }

  /**
   * Puts one network in the registry as etcd now has it, or withdraws it. On a network another
   * source here defines (provisioned here, or a registry file's), etcd's definition stands by and
   * its endpoints, other hosts', join that network's (the registry's union, each endpoint once);
   * unless the two definitions differ (subnets, internal): then one name would be two networks, and
   * etcd's is left alone, said once.
   */
  private publish(name: string): void {
    this.publishing = true;
    try {
      this.publishNow(name);
    } finally {
      this.publishing = false;
    }
    if (this.served.has(name) || this.yielded.has(name)) this.ownerSeen.set(name, this.registry.sourceOf(name));
    else this.ownerSeen.delete(name);
  }

  /**
   * A local definition of a network etcd also has came or went (network create, rm, a registry
   * file): whether etcd's joins it or stands aside is decided again.
   */
  private readonly onRegistryChange = (_snapshot: unknown, network: string): void => {
    if (this.publishing || !this.ownerSeen.has(network)) return;
    if (this.registry.sourceOf(network) !== this.ownerSeen.get(network)) this.touch(network);
  };

  private publishNow(name: string): void {
    const found = this.contents.network(name);
    if (!found) {
      this.sharedNames.delete(name);
      if (this.served.delete(name)) this.registry.removeNetwork(name, this.name);
      return;
    }
    const owner = this.registry.sourceOf(name);
    const local = owner === undefined || owner === this.name ? undefined : this.registry.current().networks.get(name)?.network;
    const difference = local && definitionDifference(found.record.network, local);
    if (difference !== undefined) {
      if (this.served.delete(name)) this.registry.removeNetwork(name, this.name);
      if (!this.yielded.has(name)) {
        this.yielded.add(name);
        this.log.warn({ registry: this.options.location.url, network: name, source: owner, problem: difference }, 'etcd: a network of this name comes from another source here with another definition; etcd\'s is not served');
      }
      return;
    }
    try {
      this.registry.setNetwork(found.record, this.name);
      this.served.add(name);
      this.yielded.delete(name);
    } catch (err) {
      this.log.error({ registry: this.options.location.url, network: name, err }, `etcd: network not served: ${errorMessage(err)}`);
      return;
    }
    this.reportShared(name, found.sharedNames);
  }

  private reportShared(network: string, names: string[]): void {
    const before = new Set(this.sharedNames.get(network) ?? []);
    if (names.length === 0) this.sharedNames.delete(network);
    else this.sharedNames.set(network, names);
    const fresh = names.filter((n) => !before.has(n));
    if (fresh.length > 0) {
      this.log.warn({ registry: this.options.location.url, network, names: fresh.slice(0, 10) }, 'etcd: a name is held by endpoints of several nodes; it answers all their addresses');
    }
  }

  /**
   * A stopped etcd never closes the watch: it is asked every checkIntervalMs whether it answers. A
   * failed check is asked again at once before it counts: a daemon that was itself stopped
   * (SIGSTOP, a suspended VM) sees its checks' deadlines pass on waking, with etcd well.
   */
  private startChecks(client: Etcd3): void {
    let running = false;
    const key = `${this.options.location.prefix}/`;
    const ask = () => client.get(key).options({ deadline: Date.now() + Math.max(1000, this.options.checkIntervalMs) }).exec();
    this.checkTimer = setInterval(() => {
      if (running) return;
      running = true;
      ask().catch(() => ask())
        .then(() => undefined, () => this.onBreak?.('outage'))
        .finally(() => { running = false; });
    }, this.options.checkIntervalMs);
    this.checkTimer.unref();
  }

  private lost(err: unknown): void {
    if (this.staleSince !== undefined) return;
    this.staleSince = Date.now();
    this.log.warn({ registry: this.options.location.url, err: { message: errorMessage(err).slice(0, 300) } }, 'etcd cannot be reached; serving the last snapshot (stale) and retrying');
  }

  /** Ends the watch and the client: the next session starts from a list. */
  private disconnect(): void {
    clearInterval(this.checkTimer);
    this.onBreak = undefined;
    const { watcher, client } = this;
    this.watcher = undefined;
    this.client = undefined;
    watcher?.removeAllListeners();
    // Not awaited: with etcd away the cancel is never answered. Closing the client ends it.
    watcher?.on('error', () => undefined);
    void watcher?.cancel().catch(() => undefined);
    client?.close();
  }
}

/**
 * Which refusals get a log line: a key refused again for the same problem (a writer putting a bad
 * value in a loop) gets none, and at most LINES_PER_SECOND lines are written (a flood of bad keys).
 */
class RefusalLines {
  private static readonly LINES_PER_SECOND = 20;
  private static readonly REMEMBERED = 4096;
  private readonly last = new Map<string, string>();
  private second = 0;
  private lines = 0;

  fresh(key: string, problem: string): boolean {
    if (this.last.get(key) === problem) return false;
    if (this.last.size >= RefusalLines.REMEMBERED) this.last.clear();
    this.last.set(key, problem);
    const now = Math.floor(Date.now() / 1000);
    if (now !== this.second) {
      this.second = now;
      this.lines = 0;
    }
    return ++this.lines <= RefusalLines.LINES_PER_SECOND;
  }
}

function keyValue(kv: IKeyValue): KeyValue {
  return { key: kv.key.toString('utf8'), value: kv.value, lease: String(kv.lease ?? '0'), modRevision: String(kv.mod_revision) };
}

/** etcd's answer to a watch or list at a revision older than its last compaction. */
function isCancelled(err: unknown): boolean {
  return /Watcher canceled|compacted/i.test(errorMessage(err));
}
