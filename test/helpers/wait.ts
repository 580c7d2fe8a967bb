// Waiting for a condition instead of sleeping for a guess: a test that sleeps 200 ms and then
// checks passes on an idle machine and fails on a busy one. The timeout is generous on purpose:
// it bounds a broken run, it is not a speed assertion.
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** What is awaited, for the error message ("the socket closed"). */
  what?: string;
  /** Pause between checks (default 20 ms). */
  everyMs?: number;
}

/**
 * Checks `condition` until it returns something truthy and returns that; throws naming `what`
 * after `timeoutMs`. A condition that throws counts as not yet true.
 */
export async function waitFor<T>(condition: () => T | Promise<T>, options: WaitOptions = {}): Promise<NonNullable<T>> {
  const { timeoutMs = 10_000, what = 'the condition', everyMs = 20 } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? ` (last check threw: ${lastError.message})` : '';
      throw new Error(`${what}: not within ${timeoutMs} ms${cause}`);
    }
    await sleep(everyMs);
  }
}


/**
 * Reads `get` until `ok` holds for what it returned, and returns that; the error names `what` and
 * the last value seen (default timeout 10 s).
 */
export async function until<T>(what: string, get: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  let last: T | undefined;
  try {
    const held = await waitFor(async () => {
      last = await get();
      return ok(last) ? { value: last } : undefined;
    }, { timeoutMs, what });
    return held.value;
  } catch (err) {
    throw new Error(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`, { cause: err });
  }
}
