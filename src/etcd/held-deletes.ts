// Deletes held back after etcd was away. When etcd stops for longer than a lease's TTL, every
// lease expires at once when it continues, a live host's as well; that host puts its keys again as
// soon as it reaches etcd. For `graceMs` after this daemon reaches etcd again, a delete of a key
// that had a lease waits: put again, the key never stopped answering; not put again, it goes when
// the grace ends (a dead host's names still go). Deletes of keys without a lease are never held.

export class HeldDeletes {
  private until = 0;
  private readonly keys = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  /** `apply`: the deletes whose grace ended, to be applied now. */
  constructor(private readonly graceMs: number, private readonly apply: (keys: string[]) => void) {}

  get size(): number {
    return this.keys.size;
  }

  /** etcd is reached again after an outage: the grace starts now. */
  outageEnded(): void {
    this.until = Date.now() + this.graceMs;
  }

  /** Whether the delete of `key`, whose value had `lease` ('0': none), waits. */
  hold(key: string, lease: string): boolean {
    if (lease === '0' || Date.now() >= this.until) {
      this.keys.delete(key);
      return false;
    }
    this.keys.add(key);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.end(), this.until - Date.now());
    this.timer.unref();
    return true;
  }

  /** `key` was put again: its delete no longer waits. */
  release(key: string): void {
    this.keys.delete(key);
  }

  close(): void {
    clearTimeout(this.timer);
  }

  private end(): void {
    const keys = [...this.keys];
    this.keys.clear();
    if (keys.length > 0) this.apply(keys);
  }
}
