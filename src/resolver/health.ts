// Which upstream servers failed lately. Failing servers go to the back of the line for a while,
// so a dead first server costs one timeout, not one per query. Also which servers do not keep the
// letter case of a question (0x20 is skipped for them for a while).

const RECHECK_AFTER_MS = 30_000;
/** How long a server that changed the case of a question is asked without 0x20. */
const CASE_RECHECK_MS = 15 * 60_000;
/** Servers come from config and registry files: a bound in case a file names very many. */
const MAX_CASE_RECORDS = 1024;

interface Record { failures: number; lastFailure: number }

export class UpstreamHealth {
  private readonly records = new Map<string, Record>();
  private readonly caseless = new Map<string, number>();

  /** This server answered a 0x20 question in another case. */
  changesCase(key: string): void {
    if (this.caseless.size >= MAX_CASE_RECORDS) this.caseless.clear();
    this.caseless.set(key, Date.now());
  }

  keepsCase(key: string): boolean {
    const since = this.caseless.get(key);
    if (since === undefined) return true;
    if (Date.now() - since < CASE_RECHECK_MS) return false;
    this.caseless.delete(key);
    return true;
  }

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
