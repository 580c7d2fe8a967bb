// Where a connect's (or disconnect's) milliseconds go: a few timestamps per operation, kept for
// the last few operations (`nsdns debug`) and logged at debug level. Nothing on the query path.

export interface StageTime {
  stage: string;
  ms: number;
}

export interface OperationTiming {
  operation: 'connect' | 'disconnect';
  /** When it finished (ISO time). */
  at: string;
  network: string;
  endpoint?: string;
  netns?: string;
  ok: boolean;
  /** The error code when it failed (never its message: that one is in the reply and the log). */
  code?: string;
  totalMs: number;
  stages: StageTime[];
  /** Which implementation did the work: links inside namespaces, the bind of 127.0.0.11. */
  paths: { links: string; bind?: string };
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/** Laps of one operation: each lap is the time since the previous one (or the start). */
export class StageClock {
  readonly started = performance.now();
  private last = this.started;
  readonly stages: StageTime[] = [];

  lap(stage: string): void {
    const now = performance.now();
    this.stages.push({ stage, ms: round(now - this.last) });
    this.last = now;
  }

  /** Up to the last lap: what the stages add up to (work after it belongs in a stage of its own). */
  total(): number {
    return round(this.last - this.started);
  }
}

/** The last `limit` operations, oldest first. */
export class TimingLog {
  private readonly entries: OperationTiming[] = [];

  constructor(private readonly limit = 16) {}

  add(entry: OperationTiming): void {
    this.entries.push(entry);
    if (this.entries.length > this.limit) this.entries.shift();
  }

  recent(): OperationTiming[] {
    return [...this.entries];
  }
}

/** The stages as one object for a log line: { plan: 0.4, 'veth pair': 1.2, ... }. */
export function stagesObject(stages: readonly StageTime[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of stages) out[s.stage] = round((out[s.stage] ?? 0) + s.ms);
  return out;
}
