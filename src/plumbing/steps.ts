// Apply named steps in order; when one fails, undo the applied ones in reverse and report both the
// failure and any undo that failed too (netavark's ErrorList, libnetwork's queueStep).
import { NsdnsError, errorMessage } from '../errors.js';
import type { StageClock } from './timing.js';

export interface Step {
  name: string;
  /** The timing stage this step is (a lap after it); none: the step laps itself, or is not timed. */
  stage?: string;
  apply(): Promise<void>;
  undo?(): Promise<void>;
}

export async function runSteps(steps: readonly Step[], clock?: StageClock): Promise<void> {
  const done: Step[] = [];
  for (const step of steps) {
    try {
      await step.apply();
      if (step.stage !== undefined) clock?.lap(step.stage);
      done.push(step);
    } catch (err) {
      const undoErrors: string[] = [];
      for (const applied of done.reverse()) {
        try {
          await applied.undo?.();
        } catch (undoErr) {
          undoErrors.push(`undo ${applied.name}: ${errorMessage(undoErr)}`);
        }
      }
      const code = err instanceof NsdnsError ? err.code : 'ERR_INTERNAL';
      const suffix = undoErrors.length > 0 ? ` (and rolling back failed: ${undoErrors.join('; ')})` : '';
      throw new NsdnsError(code, `${step.name} failed: ${errorMessage(err)}${suffix}`, { cause: err });
    }
  }
}

export interface TeardownStep {
  name: string;
  /** The timing stage this step is (see Step). */
  stage?: string;
  run(): Promise<void> | void;
}

export interface StepFailure {
  step: string;
  error: unknown;
}

/**
 * Teardown: every step runs even when an earlier one failed (netavark's teardown), so one stuck
 * link does not leave the rules, files and names behind it too. Returns what failed, in order.
 */
export async function runAll(steps: readonly TeardownStep[], clock?: StageClock): Promise<StepFailure[]> {
  const failures: StepFailure[] = [];
  for (const step of steps) {
    try {
      await step.run();
    } catch (error) {
      failures.push({ step: step.name, error });
    }
    if (step.stage !== undefined) clock?.lap(step.stage);
  }
  return failures;
}

export function failureLines(failures: readonly StepFailure[]): string[] {
  return failures.map((f) => `${f.step} failed: ${errorMessage(f.error)}`);
}

/** One error naming every failed step; its code is the first coded failure's. */
export function teardownError(what: string, failures: readonly StepFailure[]): NsdnsError {
  const coded = failures.map((f) => f.error).find((e): e is NsdnsError => e instanceof NsdnsError);
  const lines = failureLines(failures);
  return new NsdnsError(coded?.code ?? 'ERR_INTERNAL', `${what} finished with ${lines.length} error(s): ${lines.join('; ')}`, { cause: failures[0]?.error });
}
