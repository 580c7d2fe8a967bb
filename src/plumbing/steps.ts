// Apply named steps in order; when one fails, undo the applied ones in reverse and report both the
// failure and any undo that failed too (netavark's ErrorList, libnetwork's queueStep).
import { NsdnsError, errorMessage } from '../errors.js';

export interface Step {
  name: string;
  apply(): Promise<void>;
  undo?(): Promise<void>;
}

export async function runSteps(steps: readonly Step[]): Promise<void> {
  const done: Step[] = [];
  for (const step of steps) {
    try {
      await step.apply();
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
