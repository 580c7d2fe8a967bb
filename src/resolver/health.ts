// Which upstream servers failed lately (timed out or unreachable: an answer, even REFUSED, is not
// a failure). Failing servers go to the back of the line for a while, so a dead first server costs
// one timeout, not one per query; a server that failed DEAD_AFTER times in a row is known dead and
// asked by one query per PROBE_INTERVAL_MS only (that query finds out whether it is back), so a
// dead only server costs the others no timeout per query either. Also which servers do not keep
// the letter case of a question (0x20 is skipped for them for a while).

const RECHECK_AFTER_MS = 30_000;
/** Failures in a row after which a server is known dead. */
const DEAD_AFTER = 3;
/** How often a known-dead server is asked anyway (by one real query; nothing is sent to probe it). */
export const PROBE_INTERVAL_MS = 5_000;
/** How long a server that changed the case of a question is asked without 0x20. */
const CASE_RECHECK_MS = 15 * 60_000;
/** Servers come from config and registry files: a bound in case a file names very many. */
const MAX_CASE_RECORDS = 1024;

/** lastProbe: when a known-dead server was last let through; the next one is due an interval after that or the last failure. */
interface Record { failures: number; lastFailure: number; lastProbe: number }

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
    const now = Date.now();
    const r = this.records.get(key);
    if (r) {
      r.failures++;
      r.lastFailure = now;
    } else this.records.set(key, { failures: 1, lastFailure: now, lastProbe: 0 });
  }

  succeeded(key: string): void {
    this.records.delete(key);
  }

  isFailing(key: string, now = Date.now()): boolean {
    const r = this.records.get(key);
    return r !== undefined && now - r.lastFailure < RECHECK_AFTER_MS;
  }

  /**
   * Known dead: DEAD_AFTER failures in a row, the last one recent. What readiness asks: one
   * timeout is as often one slow name (a lame delegation behind the upstream) as a dead server.
   */
  isDead(key: string, now = Date.now()): boolean {
    const r = this.records.get(key);
    return r !== undefined && r.failures >= DEAD_AFTER && now - r.lastFailure < RECHECK_AFTER_MS;
  }

  /**
   * Whether a query may ask this server now. A known-dead server is asked by one query per probe
   * interval: a true answer makes that query the probe.
   */
  mayAsk(key: string, now = Date.now()): boolean {
    const r = this.records.get(key);
    if (r === undefined || r.failures < DEAD_AFTER || now - r.lastFailure >= RECHECK_AFTER_MS) return true;
    if (now - Math.max(r.lastProbe, r.lastFailure) < PROBE_INTERVAL_MS) return false;
    r.lastProbe = now;
    return true;
  }

  /** The servers in their configured order, healthy ones first. */
  order<T extends { key: string }>(servers: readonly T[]): T[] {
    const now = Date.now();
    const healthy = servers.filter((s) => !this.isFailing(s.key, now));
    return healthy.length === servers.length ? [...servers] : [...healthy, ...servers.filter((s) => this.isFailing(s.key, now))];
  }
}
