// One endpoint's health as its probes decide it, docker's way: `starting` until the first success
// (failures within the start period do not count), `healthy` after one success, `unhealthy` after
// `retries` failures in a row. A state set from outside (`endpoint health`, `health:` in a file)
// replaces the current one and clears the streak; the next probe result moves on from there.
import type { HealthCheck, HealthState } from '../registry/types.js';

export interface ProbeResult {
  ok: boolean;
  /** Our own words (`connected`, `HTTP 503`, `connection refused`): never bytes from the peer. */
  detail: string;
  /** Epoch milliseconds. */
  start: number;
  end: number;
}

/** Results kept per endpoint, as docker keeps five. */
export const LOG_KEEP = 5;

export class HealthMachine {
  failingStreak = 0;
  readonly log: ProbeResult[] = [];

  constructor(
    readonly check: HealthCheck,
    /** When probing began: the start period counts from here. */
    readonly since: number,
    public status: HealthState = 'starting',
  ) {}

  /**
   * Applies one probe result; returns the status after it. The log keeps copies, and once full
   * reuses its oldest entry for the newest: entries live for five intervals, long enough to be
   * promoted to V8's old space, and a new one per probe there meant full collections.
   */
  record(result: ProbeResult): HealthState {
    const log = this.log;
    let entry: ProbeResult;
    if (log.length < LOG_KEEP) {
      entry = { ok: false, detail: '', start: 0, end: 0 };
      log.push(entry);
    } else {
      // Moved along by hand: shift() and push() reallocate the array's store now and then.
      entry = log[0];
      for (let i = 1; i < log.length; i++) log[i - 1] = log[i];
      log[log.length - 1] = entry;
    }
    entry.ok = result.ok;
    entry.detail = result.detail;
    entry.start = result.start;
    entry.end = result.end;
    if (result.ok) {
      this.failingStreak = 0;
      this.status = 'healthy';
      return this.status;
    }
    // Docker: while starting, a failure within the start period is not held against the endpoint.
    if (this.status === 'starting' && result.start < this.since + this.check.startPeriodMs) return this.status;
    this.failingStreak++;
    if (this.failingStreak >= this.check.retries) this.status = 'unhealthy';
    return this.status;
  }

  /** A state set from outside: it holds until a probe result changes it. */
  override(state: HealthState): void {
    this.status = state;
    this.failingStreak = 0;
  }
}
