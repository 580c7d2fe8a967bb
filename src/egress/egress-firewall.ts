// Egress enforcement in the kernel: for each governed namespace, default deny except its own
// networks, its gateways (no DNS), the CIDRs of its policy and the addresses learned from allowed
// DNS answers, each for the answer's lifetime. The rules are in egress-rules.ts; this class keeps
// the set of governed namespaces and sends every policy change through one nft channel, in order.
// Learned addresses, the frequent writes, go straight to the kernel's sets over netlink
// (nft-netlink.ts); where that socket cannot be had, through the channel like the rest.
//
// The tables stay in the kernel when the daemon stops (close() does not remove them): a stopped
// daemon does not open a namespace. At the next start, open() takes over what the kernel holds.
import { execa } from 'execa';
import { NsdnsError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  baseCommands, canonicalAddress, checkRules, checkTable, deleteKeyCommands, forgetLearnedCommands, deleteTablesCommands, idOf, keyCommands, keyNames, learnCommands, mapCommands, MAX_LEARNED,
  type EgressRules, type LearnedElement,
} from './egress-rules.js';
import { Mutex } from '../plumbing/mutex.js';
import { LearnBatch } from './learn-batch.js';
import { NftChannel } from './nft-channel.js';
import { NftNetlink, type SetWrite } from './nft-netlink.js';

export type { EgressCidr, EgressRules, EgressSource } from './egress-rules.js';

/** A learned address stays at most this long without a new answer (a week), whatever the TTL says. */
const MAX_TTL_SECONDS = 7 * 24 * 3600;
/** Learned writes done at once (a transaction each) per event-loop turn; a burst's others are merged. */
const AT_ONCE_PER_TURN = 16;
/**
 * How long past its expiry by the daemon's clock an address may still be in the kernel: the
 * kernel counts from its write, which may have waited behind a policy transaction or a queue.
 * Within it, an address answered again is replaced, not added, where the kernel does not refresh
 * in place; and it is kept in the map of expiries.
 */
const REPLACE_MARGIN_MS = 30_000;
/** The set askRefresh() makes and removes in the egress table (no key's names look like it). */
const REFRESH_PROBE = 'refresh_probe';

/** When a learned address's kernel timeout ends (ms), and the transaction writing it while it is under way. */
interface Learned { until: number; applied: Promise<void> | undefined }

export interface EgressCounters { dropped: number; learned4: number; learned6: number }

export interface EgressFirewallOptions {
  log?: Logger;
  /** Also log dropped packets (rate-limited, in the kernel log) besides counting them. */
  logDrops?: boolean;
  /**
   * The most addresses a namespace holds open per family (egress.maxLearned; MAX_LEARNED's default
   * when absent): its sets' size. The kernel refuses an address past it, and learn() rejects with
   * ERR_EGRESS_FULL; addresses open already are refreshed as before.
   */
  maxLearned?: number;
  channel?: NftChannel;
  /** How learned addresses reach the kernel: over netlink (the default) or through the nft channel. */
  learnVia?: 'netlink' | 'nft';
  /**
   * How an address answered again gets its later expiry: 'in-place' (an add updates it: Linux 6.10
   * and later) or 'replace' (deleted and added in one transaction: any kernel). Default: the
   * kernel is asked once, by a probe set in the egress table.
   */
  refresh?: 'in-place' | 'replace';
}

/**
 * The daemon's egress enforcement. Made by open(), which first takes over what the kernel holds:
 * every change rewrites the source maps from the namespaces this instance knows, so one that
 * started before the kernel's state was adopted would leave earlier namespaces ungoverned.
 */
export class EgressFirewall {
  private readonly governed = new Map<string, EgressRules>();
  /** Per key: address → when its kernel timeout ends (ms), so an answer never shortens it. */
  private readonly expiries = new Map<string, { until: Map<string, Learned>; pruneAt: number }>();
  /** Policy changes one at a time: each rewrites the maps from the whole governed set. */
  private readonly lock = new Mutex();
  private readonly channel: NftChannel;
  private readonly learned: LearnBatch;
  /** Undefined: learned addresses go through the channel (asked for, or netlink could not be had). */
  private netlink: NftNetlink | undefined;
  /** Per key, its policy transaction under way: learned addresses wait for it (their sets may be new). */
  private readonly changing = new Map<string, Promise<void>>();
  /** Per key, its learned addresses on their way to the kernel (settled either way): a change waits for them. */
  private readonly writing = new Map<string, Promise<void>>();
  private baseWritten = false;
  /** Writes done at once since the last end of a turn seen: past AT_ONCE_PER_TURN, a turn's others are merged. */
  private atOnce = 0;
  /** Whether an add refreshes an element already in a set (see the `refresh` option); known once the table is. */
  private inPlace: boolean | undefined;

  /**
   * `table`: the daemon's egress table name (the same name in the inet and bridge families).
   * `known`: every namespace whose policy the daemon knows at start. These keep their rules and
   * learned addresses (the rules rewritten in place); the kernel's other egress objects (namespaces
   * no longer known) are removed, in the same transaction.
   */
  static async open(table: string, known: ReadonlyMap<string, EgressRules>, options: EgressFirewallOptions = {}): Promise<{ firewall: EgressFirewall; kept: number; removed: number }> {
    const firewall = new EgressFirewall(table, options);
    try {
      return { firewall, ...await firewall.adopt(known) };
    } catch (err) {
      await firewall.close();
      throw err;
    }
  }

  private constructor(readonly table: string, private readonly options: EgressFirewallOptions = {}) {
    checkTable(table);
    this.channel = options.channel ?? new NftChannel({ log: options.log });
    this.learned = new LearnBatch((key, v4, v6) => this.writeLearned(key, v4, v6));
    if (options.learnVia !== 'nft') {
      const opened = NftNetlink.open();
      if ('writer' in opened) this.netlink = opened.writer;
      else options.log?.warn({ reason: opened.reason }, 'egress: no netlink socket for learned addresses; they go through nft');
    }
  }

  /** How learned addresses reach the kernel now. */
  get learnedVia(): 'netlink' | 'nft' {
    return this.netlink !== undefined ? 'netlink' : 'nft';
  }

  /** Processes started by the channel: one for its lifetime, unless nft died or could not start. */
  get processesStarted(): number {
    return this.channel.processesStarted;
  }

  /**
   * Governs `key` with `rules`, replacing its previous rules in one transaction. Resolves when the
   * kernel has them: a namespace newly governed is default-deny from then on. Learned addresses
   * are kept across a replace.
   */
  setPolicy(key: string, rules: EgressRules): Promise<void> {
    checkRules(rules);
    return this.change(key, async () => {
      const before = this.governed.get(key);
      // Governed from here on, so a learn() queued behind this transaction is not skipped.
      this.governed.set(key, rules);
      try {
        await this.send([...this.base(), ...keyCommands(this.table, key, rules, this.options), ...mapCommands(this.table, this.governed)]);
      } catch (err) {
        if (before === undefined) this.governed.delete(key);
        else this.governed.set(key, before);
        throw err;
      }
      await this.askRefresh();
    });
  }

  /**
   * Closes every address learned for `key` (its policy lost names: what they answered must not stay
   * open until it expires). Connections already open live on; new ones need a new answer.
   */
  forgetLearned(key: string): Promise<void> {
    // Forgotten at once: an answer given from now on is written again (after the flush), not
    // skipped as already open.
    this.expiries.delete(key);
    return this.change(key, async () => {
      if (!this.governed.has(key)) return;
      await this.send(forgetLearnedCommands(this.table, key));
    });
  }

  /** Stops governing `key`: its namespace is open again (ungoverned) once this resolves. */
  remove(key: string): Promise<void> {
    return this.change(key, async () => {
      if (!this.governed.has(key)) return;
      const next = new Map(this.governed);
      next.delete(key);
      await this.send([...mapCommands(this.table, next), ...deleteKeyCommands(this.table, keyNames(key).id)]);
      this.governed.delete(key);
      this.expiries.delete(key);
    });
  }

  /**
   * Opens `addresses` for `key` for `ttlSeconds` (at least 1 s). Resolves once the kernel has them;
   * rejects with ERR_EGRESS_FULL when a set of `key` holds maxLearned addresses already.
   * An address already open for longer keeps its later expiry, also while that expiry is still on
   * its way to the kernel: the kernel keeps the last timeout written, so a shorter answer sent
   * after a longer one (two names of one CDN address, answered at once) would cut the longer short.
   * Such an answer waits for the longer one's transaction instead. A key that is not governed has
   * nothing to open; one whose policy is on its way gets its addresses once the policy is in.
   * Undefined when there is nothing to wait for (see EgressLearner): most cache hits.
   */
  learn(key: string, addresses: readonly string[], ttlSeconds: number): Promise<void> | undefined {
    // A key whose first policy is on its way counts: an answer given meanwhile must be opened too.
    if (!this.governed.has(key) && !this.changing.has(key)) return undefined;
    if (!Number.isFinite(ttlSeconds)) return Promise.reject(new NsdnsError('ERR_FIREWALL', 'egress: the TTL is not a number'));
    const ttl = Math.min(Math.max(Math.ceil(ttlSeconds), 1), MAX_TTL_SECONDS);
    const now = Date.now();
    const until = now + ttl * 1000;
    const known = this.expiriesOf(key, now);
    const v4: LearnedElement[] = [];
    const v6: LearnedElement[] = [];
    const sent: string[] = [];
    /** Addresses open already, for less long: the kernel keeps them so if this write fails. */
    let shorter: Map<string, Learned> | undefined;
    let pending: Array<Promise<void>> | undefined;
    for (const value of addresses) {
      const a = canonicalAddress(value);
      if (a === undefined) return Promise.reject(new NsdnsError('ERR_FIREWALL', 'egress: a learned address is not a literal IPv4 or IPv6 address'));
      const seen = known.get(a.text);
      // Within a second counts as open: a cached answer's TTL is counted down in whole seconds, and
      // the grace covers the difference; rewriting it would cost a kernel write per cache hit.
      if (seen !== undefined && seen.until + 1000 >= until) {
        if (seen.applied !== undefined) (pending ??= []).push(seen.applied);
        continue;
      }
      const element: LearnedElement = { address: a.text, ttl };
      if (seen !== undefined) {
        (shorter ??= new Map()).set(a.text, seen);
        // Maybe still in the kernel, on a kernel whose add may leave it as it was: deleted and
        // added again (one gone after all costs a retry, see replaceFound).
        if (this.inPlace !== true && seen.until > now - REPLACE_MARGIN_MS) element.replace = true;
      }
      (a.family === 4 ? v4 : v6).push(element);
      sent.push(a.text);
    }
    if (sent.length > 0) {
      const entry: Learned = { until, applied: undefined };
      for (const a of sent) known.set(a, entry);
      const written = this.write(key, v4, v6);
      if (written !== undefined) {
        entry.applied = written.then(() => {
          entry.applied = undefined;
        }, (err: unknown) => {
          // Not open after all: the next answer writes them again. This also keeps the map as
          // bounded as the kernel's sets when a full set refuses them.
          for (const a of sent) {
            if (known.get(a) !== entry) continue;
            const before = shorter?.get(a);
            if (before === undefined) known.delete(a);
            else known.set(a, before);
          }
          throw setFull(err) ? this.full() : err;
        });
        (pending ??= []).push(entry.applied);
      }
    }
    if (pending === undefined) return undefined;
    return pending.length === 1 ? pending[0] : Promise.all(pending).then(() => undefined);
  }

  /**
   * Writes `key`'s new addresses: at once where the writer can (undefined: the kernel has them),
   * else merged with the rest of the turn's (a promise). At once only with nothing of `key` on
   * its way, so a key's writes reach the kernel in the order they were asked (a later one must not
   * cut an expiry short, and a policy transaction goes first). Not only the first of a turn: a
   * client that asks again as soon as it is answered is often read within the same turn, and
   * merging its answer would cost it a promise, a turn and a batch of one. A burst is bounded: past
   * AT_ONCE_PER_TURN writes, the rest of the turn goes in one transaction per namespace.
   */
  private write(key: string, v4: LearnedElement[], v6: LearnedElement[]): Promise<void> | undefined {
    const netlink = this.netlink;
    if (netlink === undefined || !netlink.synchronous || this.atOnce >= AT_ONCE_PER_TURN || this.changing.has(key) || this.writing.has(key) || this.learned.has(key)) {
      return this.learned.add(key, v4, v6);
    }
    // Only the write that reaches the cap asks for the turn's end (a check-phase callback per answer
    // would cost more than the write): a steady client pays for it once per AT_ONCE_PER_TURN answers.
    if (++this.atOnce === AT_ONCE_PER_TURN) setImmediate(this.endTurn);
    const outcome = netlink.addElementsNow(this.table, this.setWrites(key, v4, v6));
    if (outcome === undefined) return undefined;
    const written = outcome instanceof Error
      ? this.afterNetlinkError(netlink, key, v4, v6, outcome)
      : outcome.catch((err: unknown) => this.afterNetlinkError(netlink, key, v4, v6, err));
    latestPerKey(this.writing, key, written);
    return written;
  }

  /** The namespace's set of this family is at its size: said in the limit's terms, without the kernel's text. */
  private full(): NsdnsError {
    const limit = this.options.maxLearned ?? MAX_LEARNED.byDefault;
    return new NsdnsError('ERR_EGRESS_FULL', `egress: the namespace holds its limit of ${limit} open addresses of one family (egress.maxLearned)`);
  }

  private readonly endTurn = (): void => {
    this.atOnce = 0;
  };

  /** Kernel transactions that carried learned addresses over netlink (at once or merged). */
  get learnTransactions(): number {
    return this.netlink?.batchesSent ?? 0;
  }

  private setWrites(key: string, v4: LearnedElement[], v6: LearnedElement[]): SetWrite[] {
    const n = keyNames(key);
    if (v6.length === 0) return [{ set: n.learned4, elements: v4 }];
    if (v4.length === 0) return [{ set: n.learned6, elements: v6 }];
    return [{ set: n.learned4, elements: v4 }, { set: n.learned6, elements: v6 }];
  }

  /**
   * `key` is about to be governed (its policy is known, the transaction not queued yet): addresses
   * answered for it meanwhile wait for `until` instead of being skipped as ungoverned.
   */
  expect(key: string, until: Promise<unknown>): void {
    if (this.governed.has(key) || this.changing.has(key)) return;
    latestPerKey(this.changing, key, until);
  }

  /**
   * Runs a policy transaction of `key` in turn. Learned addresses asked from now on wait for it:
   * over netlink they do not queue behind it in the channel, and a set it creates must exist first
   * (one it flushes must not take them with it).
   */
  private change(key: string, transaction: () => Promise<void>): Promise<void> {
    // Addresses answered before this change go first, as they were answered: flushed now, and the
    // transaction waits until the kernel has them (they must not land in sets the change replaced).
    this.learned.flushKey(key);
    const before = this.writing.get(key);
    const done = this.lock.run(async () => {
      if (before !== undefined) await before;
      await transaction();
    });
    latestPerKey(this.changing, key, done);
    return done;
  }

  private writeLearned(key: string, v4: LearnedElement[], v6: LearnedElement[]): Promise<void> {
    const written = this.writeLearnedInTurn(key, v4, v6);
    latestPerKey(this.writing, key, written);
    return written;
  }

  private async writeLearnedInTurn(key: string, v4: LearnedElement[], v6: LearnedElement[]): Promise<void> {
    const before = this.changing.get(key);
    if (before !== undefined) {
      await before;
      // Its policy failed, or it was let go: nothing to open.
      if (!this.governed.has(key)) return;
    }
    const netlink = this.netlink;
    if (netlink === undefined) return this.writeThroughNft(key, v4, v6);
    try {
      await netlink.addElements(this.table, this.setWrites(key, v4, v6));
    } catch (err) {
      await this.afterNetlinkError(netlink, key, v4, v6, err);
    }
  }

  private async afterNetlinkError(netlink: NftNetlink, key: string, v4: LearnedElement[], v6: LearnedElement[], err: unknown): Promise<void> {
    // Let go meanwhile: its sets are gone, and there is nothing to open.
    if (!this.governed.has(key)) return;
    if (!netlink.broken) {
      if (!replacedOneMissing(err, v4, v6)) throw err;
      return this.replaceFound((a, b) => netlink.addElements(this.table, this.setWrites(key, a, b)), v4, v6);
    }
    // The socket is gone: this write and the next go through nft.
    if (this.netlink === netlink) {
      this.netlink = undefined;
      this.options.log?.warn({ err: err instanceof Error ? err.message : String(err) }, 'egress: the netlink socket for learned addresses failed; they go through nft from now on');
    }
    await this.writeThroughNft(key, v4, v6);
  }

  private writeThroughNft(key: string, v4: LearnedElement[], v6: LearnedElement[]): Promise<void> {
    const write = (a: LearnedElement[], b: LearnedElement[]) => this.channel.submit(learnCommands(this.table, key, a, b).join('; '));
    return write(v4, v6).catch((err: unknown) => {
      if (!replacedOneMissing(err, v4, v6)) throw err;
      return this.replaceFound(write, v4, v6);
    });
  }

  /**
   * A write that replaced addresses was refused because one of them was not in the set (it
   * expired meanwhile, or was deleted by hand), and applied nothing. Added first without a
   * delete, every one is in the set; replaced then, each gets its new expiry. With one replaced,
   * that one was the missing one: the add is all it needs.
   */
  private async replaceFound(write: (v4: LearnedElement[], v6: LearnedElement[]) => Promise<void>, v4: LearnedElement[], v6: LearnedElement[]): Promise<void> {
    const plain = (elements: LearnedElement[]) => elements.map(({ address, ttl }) => ({ address, ttl }));
    const replaced = [v4, v6].map((elements) => elements.filter((e) => e.replace === true)) as [LearnedElement[], LearnedElement[]];
    await write(plain(v4), plain(v6));
    if (replaced[0].length + replaced[1].length > 1) await write(...replaced);
  }

  /** How an address answered again gets its later expiry (undefined until the kernel was asked). */
  get refresh(): 'in-place' | 'replace' | undefined {
    return this.inPlace === undefined ? undefined : this.inPlace ? 'in-place' : 'replace';
  }

  /**
   * Asks the kernel once whether an add refreshes an element already in a set: an element added
   * with a timeout of a minute, then added again with an hour's timeout and expiration, in a set
   * of its own (removed after). Linux 6.10 and later apply the second add; older kernels leave the
   * element as it was (and before 5.3 would ignore an expiration given with the first).
   * Run inside a policy transaction, once the table exists. Should the probe fail, addresses are
   * replaced: that works on every kernel.
   */
  private async askRefresh(): Promise<void> {
    if (this.inPlace !== undefined) return;
    if (this.options.refresh !== undefined) {
      this.inPlace = this.options.refresh === 'in-place';
      return;
    }
    const set = `inet ${this.table} ${REFRESH_PROBE}`;
    try {
      await this.channel.submit([`add set ${set} { type ipv4_addr; flags timeout; }`, `flush set ${set}`, `add element ${set} { 192.0.2.1 timeout 1m }`].join('; '));
      await this.channel.submit(`add element ${set} { 192.0.2.1 timeout 1h expires 1h }`);
      const elements = (await this.listed('set', REFRESH_PROBE))?.elem as Array<{ elem?: { expires?: unknown } }> | undefined;
      const expires = elements?.[0]?.elem?.expires;
      this.inPlace = typeof expires === 'number' && expires > 1800;
      if (!this.inPlace) this.options.log?.info('egress: this kernel does not refresh a set element in place (before Linux 6.10); an address answered again is deleted and added in one transaction');
    } catch (err) {
      this.inPlace = false;
      this.options.log?.warn({ err: err instanceof Error ? err.message : String(err) }, 'egress: could not ask the kernel how set elements are refreshed; addresses answered again are replaced');
    } finally {
      await this.channel.submit(`delete set ${set}`).catch(() => undefined);
    }
  }

  /** Dropped packets and learned set sizes of `key`, read from the kernel; undefined if not governed. */
  async counters(key: string): Promise<EgressCounters | undefined> {
    if (!this.governed.has(key)) return undefined;
    const n = keyNames(key);
    // One listing per object: nft 1.0.6 fails on several `list` commands in one run.
    const [counter, learned4, learned6] = await Promise.all([
      this.listed('counter', n.dropped), this.listed('set', n.learned4), this.listed('set', n.learned6),
    ]);
    return { dropped: counter?.packets ?? 0, learned4: learned4?.elem?.length ?? 0, learned6: learned6?.elem?.length ?? 0 };
  }

  private async listed(kind: 'counter' | 'set', name: string): Promise<{ packets?: number; elem?: unknown[] } | undefined> {
    const r = await execa('nft', ['-j', 'list', kind, 'inet', this.table, name], { reject: false, timeout: 10_000, maxBuffer: 64 * 1024 * 1024 });
    if (r.exitCode !== 0) throw new NsdnsError('ERR_FIREWALL', `reading the egress ${kind} of a namespace: ${r.stderr.trim().slice(0, 300)}`);
    const items = (JSON.parse(r.stdout) as { nftables: Array<Record<string, { packets?: number; elem?: unknown[] }>> }).nftables;
    return items.find((i) => kind in i)?.[kind];
  }

  private adopt(policies: ReadonlyMap<string, EgressRules>): Promise<{ kept: number; removed: number }> {
    for (const rules of policies.values()) checkRules(rules);
    return this.lock.run(() => this.replaceAll(policies));
  }

  private async replaceAll(policies: ReadonlyMap<string, EgressRules>): Promise<{ kept: number; removed: number }> {
    const kernel = await this.kernelState();
    const wanted = new Set([...policies.keys()].map((k) => keyNames(k).id));
    const stale = [...kernel.ids].filter((id) => !wanted.has(id));
    this.governed.clear();
    this.expiries.clear();
    if (policies.size === 0) {
      // Nothing to govern: no tables at all, so ungoverned traffic pays no lookup either.
      if (kernel.present) await this.send(deleteTablesCommands(this.table));
      this.baseWritten = false;
      return { kept: 0, removed: stale.length };
    }
    await this.send([
      ...this.base(),
      ...[...policies].flatMap(([key, rules]) => keyCommands(this.table, key, rules, this.options)),
      ...mapCommands(this.table, policies),
      ...stale.flatMap((id) => deleteKeyCommands(this.table, id)),
    ]);
    await this.askRefresh();
    const learned = kernel.present ? await this.learnedInKernel() : new Map<string, Map<string, number>>();
    const now = Date.now();
    for (const [key, rules] of policies) {
      this.governed.set(key, rules);
      // The expiries an earlier daemon left: a shorter answer after the takeover must not cut them short.
      const left = learned.get(keyNames(key).id);
      if (left !== undefined) this.expiries.set(key, { until: new Map([...left].map(([a, seconds]) => [a, { until: now + seconds * 1000, applied: undefined }])), pruneAt: Math.max(1024, left.size * 2) });
    }
    return { kept: [...wanted].filter((id) => kernel.ids.has(id)).length, removed: stale.length };
  }

  /** Stops the channel. The tables and their rules stay in the kernel: enforcement survives. */
  close(): Promise<void> {
    this.netlink?.close();
    this.netlink = undefined;
    return this.channel.close();
  }

  /** Whether the inet table exists, and the key ids whose chains it holds (chains only: no set elements). */
  /** Per key id, the learned addresses the kernel holds with the seconds until each expires (rounded down by nft). */
  private async learnedInKernel(): Promise<Map<string, Map<string, number>>> {
    const learned = new Map<string, Map<string, number>>();
    const r = await execa('nft', ['-j', 'list', 'table', 'inet', this.table], { reject: false, timeout: 10_000, maxBuffer: 256 * 1024 * 1024 });
    if (r.exitCode !== 0) return learned;
    type Elem = { elem?: { val?: unknown; expires?: unknown } };
    const items = (JSON.parse(r.stdout) as { nftables: Array<{ set?: { name?: string; elem?: unknown[] } }> }).nftables;
    for (const { set } of items) {
      const id = /^l[46]_/.test(set?.name ?? '') ? idOf(set!.name!) : undefined;
      if (id === undefined || !Array.isArray(set!.elem)) continue;
      let of = learned.get(id);
      if (of === undefined) learned.set(id, (of = new Map()));
      for (const e of set!.elem as Elem[]) {
        const a = typeof e?.elem?.val === 'string' ? canonicalAddress(e.elem.val) : undefined;
        if (a !== undefined && typeof e.elem!.expires === 'number') of.set(a.text, e.elem!.expires);
      }
    }
    return learned;
  }

  private async kernelState(): Promise<{ present: boolean; ids: Set<string> }> {
    const r = await execa('nft', ['-j', 'list', 'chains', 'inet'], { reject: false, timeout: 10_000, maxBuffer: 64 * 1024 * 1024 });
    if (r.exitCode !== 0) throw new NsdnsError('ERR_FIREWALL', `reading the kernel's egress chains: ${r.stderr.trim().slice(0, 300)}`);
    const items = (JSON.parse(r.stdout) as { nftables: Array<{ chain?: { table?: string; name?: string } }> }).nftables;
    const ours = items.flatMap((i) => (i.chain?.table === this.table ? [i.chain.name ?? ''] : []));
    return { present: ours.length > 0, ids: new Set(ours.map(idOf).filter((id): id is string => id !== undefined)) };
  }

  /** The base commands, the first time only (each process writes them once). */
  private base(): string[] {
    if (this.baseWritten) return [];
    this.baseWritten = true;
    return baseCommands(this.table);
  }

  private async send(commands: string[]): Promise<void> {
    try {
      await this.channel.submit(commands.join('; '));
    } catch (err) {
      this.baseWritten = false;
      throw err;
    }
  }

  /** The expiries of `key`'s learned addresses; expired entries are dropped as the map doubles. */
  private expiriesOf(key: string, now: number): Map<string, Learned> {
    let known = this.expiries.get(key);
    if (known === undefined) this.expiries.set(key, (known = { until: new Map(), pruneAt: 1024 }));
    if (known.until.size >= known.pruneAt) {
      // Past the margin only where a replace may need to know (an address kept there is not written as new).
      const gone = this.inPlace === true ? now : now - REPLACE_MARGIN_MS;
      for (const [a, t] of known.until) if (t.until <= gone && t.applied === undefined) known.until.delete(a);
      known.pruneAt = Math.max(1024, known.until.size * 2);
    }
    return known.until;
  }
}

/** Whether the kernel refused a learned write because a set was full: over netlink (ENFILE), or as nft reports that errno. */
function setFull(err: unknown): boolean {
  if (!(err instanceof NsdnsError)) return false;
  return err.code === 'ERR_EGRESS_FULL' || (err.code === 'ERR_FIREWALL' && err.message.includes('Too many open files in system'));
}

/** Keeps `work`, settled either way, as `key`'s latest in `map` until it settles (or a later one replaces it). */
function latestPerKey(map: Map<string, Promise<void>>, key: string, work: Promise<unknown>): void {
  const settled = work.then(() => undefined, () => undefined);
  map.set(key, settled);
  void settled.then(() => {
    if (map.get(key) === settled) map.delete(key);
  });
}

/** Whether `err` is the kernel's "no such element" (a set is missing too) for a write that replaced some. */
function replacedOneMissing(err: unknown, v4: readonly LearnedElement[], v6: readonly LearnedElement[]): boolean {
  if (!(err instanceof Error) || !/\bENOENT\b|No such file or directory/.test(err.message)) return false;
  return v4.some((e) => e.replace === true) || v6.some((e) => e.replace === true);
}
