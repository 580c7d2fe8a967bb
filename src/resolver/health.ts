// Which upstream servers failed lately (timed out or unreachable: an answer, even REFUSED, is not
// a failure). Failing servers go to the back of the line for a while, so a dead first server costs
// one timeout, not one per query; a server that failed DEAD_AFTER times in a row is known dead and
// asked by one query per PROBE_INTERVAL_MS only (that query finds out whether it is back), so a
// dead only server costs the others no timeout per query either. A server that times out after
// another answered the same question is known dead at once: the name was fine, the server was not.
// Also how long each server takes to answer (for the hedge delay: when the next server is asked
// too), and which servers do not keep the letter case of a question (0x20 is skipped for them for
// a while).

const RECHECK_AFTER_MS = 30_000;
/** Failures in a row after which a server is known dead. */
const DEAD_AFTER = 3;
/** How often a known-dead server is asked anyway (by one real query; nothing is sent to probe it). */
export const PROBE_INTERVAL_MS = 5_000;
/** How long a server that changed the case of a question is asked without 0x20. */
const CASE_RECHECK_MS = 15 * 60_000;
/** Servers come from config and registry files: a bound in case a file names very many. */
const MAX_CASE_RECORDS = 1024;
const MAX_RTT_RECORDS = 1024;

/**
 * Bounds of the hedge delay, ms. Never sooner than a few ms past a server's usual time (SRTT), nor
 * than the floor (a busy event loop is late by a few ms); never later than the ceiling, well under
 * the timeout, so a dead server costs its clients a fraction of it. A server not heard from yet
 * gets the unmeasured delay: short, since it may be the dead one, and long enough for a near one.
 */
const HEDGE_MARGIN_MS = 5;
const HEDGE_FLOOR_MS = 10;
const HEDGE_CEILING_MS = 200;
const UNMEASURED_HEDGE_MS = 25;

/** A smoothed round-trip time and its variation, ms (the estimator of RFC 6298 §2). */
interface Rtt { srtt: number; rttvar: number }

/** lastProbe: when a known-dead server was last let through; the next one is due an interval after that or the last failure. */
interface Record { failures: number; lastFailure: number; lastProbe: number }

export class UpstreamHealth {
  private readonly records = new Map<string, Record>();
  private readonly caseless = new Map<string, number>();
  private readonly rtts = new Map<string, Rtt>();

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

  /**
   * The exchange failed (a timeout, an unreachable server). `othersAnswered`: another server
   * answered the same question meanwhile, so this one is known dead at once.
   */
  failed(key: string, othersAnswered = false): void {
    const now = Date.now();
    let r = this.records.get(key);
    if (!r) {
      r = { failures: 0, lastFailure: now, lastProbe: 0 };
      this.records.set(key, r);
    }
    r.failures = othersAnswered ? Math.max(r.failures + 1, DEAD_AFTER) : r.failures + 1;
    r.lastFailure = now;
  }

  /** The server answered (any rcode), after `rttMs` when measured. */
  succeeded(key: string, rttMs?: number): void {
    this.records.delete(key);
    if (rttMs !== undefined) this.measured(key, rttMs);
  }

  /**
   * A server asked after this one answered first: this one goes to the back of the line now, not
   * counted as a failure (slow is not dead). Its own answer, when it comes, forgives it; its
   * timeout makes it known dead.
   */
  outrun(key: string): void {
    const now = Date.now();
    const r = this.records.get(key);
    if (r) r.lastFailure = now;
    else this.records.set(key, { failures: 0, lastFailure: now, lastProbe: 0 });
  }

  /**
   * How long a query waits for this server before the next one is asked too: its SRTT plus four
   * deviations (RFC 6298's retransmission timeout), within the bounds above and under half of
   * `timeoutMs`.
   */
  hedgeDelay(key: string, timeoutMs: number): number {
    const r = this.rtts.get(key);
    const wanted = r === undefined ? UNMEASURED_HEDGE_MS : Math.max(r.srtt + 4 * r.rttvar, r.srtt + HEDGE_MARGIN_MS, HEDGE_FLOOR_MS);
    return Math.min(wanted, HEDGE_CEILING_MS, timeoutMs / 2);
  }

  private measured(key: string, ms: number): void {
    const r = this.rtts.get(key);
    if (r === undefined) {
      if (this.rtts.size >= MAX_RTT_RECORDS) this.rtts.clear();
      this.rtts.set(key, { srtt: ms, rttvar: ms / 2 });
      return;
    }
    r.rttvar = 0.75 * r.rttvar + 0.25 * Math.abs(r.srtt - ms);
    r.srtt = 0.875 * r.srtt + 0.125 * ms;
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
