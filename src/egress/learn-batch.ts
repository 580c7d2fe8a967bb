// The learned addresses of one event-loop turn, merged per namespace: one write per namespace with
// every address of the turn, instead of one per answer, so a burst of answers costs one kernel
// transaction per namespace, and a namespace removed meanwhile fails only its own callers. An
// address asked twice in one turn goes out once, with the longer timeout; whether it is replaced
// (deleted first) is decided by its first asking: a later one's "replace" may mean an element
// this very batch adds, which a delete before it would not find.
import type { LearnedElement } from './egress-rules.js';

/** Writes one namespace's learned addresses; resolves when the kernel has them. */
export type LearnedWriter = (key: string, v4: LearnedElement[], v6: LearnedElement[]) => Promise<void>;

/** Per family: address → the longest timeout asked for it in this turn. */
interface Pending { v4: Map<string, LearnedElement>; v6: Map<string, LearnedElement>; waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> }

export class LearnBatch {
  private pending = new Map<string, Pending>();
  private scheduled = false;

  constructor(private readonly write: LearnedWriter) {}

  /** Queues canonical addresses for `key`; resolves when the kernel has this turn's batch. */
  add(key: string, v4: readonly LearnedElement[], v6: readonly LearnedElement[]): Promise<void> {
    let p = this.pending.get(key);
    if (p === undefined) this.pending.set(key, (p = { v4: new Map(), v6: new Map(), waiters: [] }));
    for (const [into, from] of [[p.v4, v4], [p.v6, v6]] as const) {
      for (const e of from) {
        const before = into.get(e.address);
        into.set(e.address, before === undefined ? e : { ...before, ttl: Math.max(e.ttl, before.ttl) });
      }
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    const waiters = p.waiters;
    return new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
  }

  /** Whether `key` has addresses waiting for the end of this turn. */
  has(key: string): boolean {
    return this.pending.has(key);
  }

  /** Writes `key`'s addresses of this turn now (a policy change of `key` is about to be queued). */
  flushKey(key: string): void {
    const p = this.pending.get(key);
    if (p === undefined) return;
    this.pending.delete(key);
    this.writeOne(key, p);
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = new Map();
    for (const [key, p] of batch) this.writeOne(key, p);
  }

  private writeOne(key: string, p: Pending): void {
    this.write(key, [...p.v4.values()], [...p.v6.values()]).then(
      () => p.waiters.forEach((w) => w.resolve()),
      (err: unknown) => p.waiters.forEach((w) => w.reject(err)),
    );
  }
}
