// Which upstream servers failed lately. Failing servers go to the back of the line for a while,
// so a dead first server costs one timeout, not one per query.

const RECHECK_AFTER_MS = 30_000;

interface Record { failures: number; lastFailure: number }

export class UpstreamHealth {
  private readonly records = new Map<string, Record>();

  failed(key: string): void {
    const r = this.records.get(key);
    if (r) {
      r.failures++;
      r.lastFailure = Date.now();
    } else this.records.set(key, { failures: 1, lastFailure: Date.now() });
  }

  succeeded(key: string): void {
    this.records.delete(key);
  }

  isFailing(key: string, now = Date.now()): boolean {
    const r = this.records.get(key);
    return r !== undefined && now - r.lastFailure < RECHECK_AFTER_MS;
  }

  /** The servers in their configured order, healthy ones first. */
  order<T extends { key: string }>(servers: readonly T[]): T[] {
    const now = Date.now();
    const healthy = servers.filter((s) => !this.isFailing(s.key, now));
    return healthy.length === servers.length ? [...servers] : [...healthy, ...servers.filter((s) => this.isFailing(s.key, now))];
  }
}
