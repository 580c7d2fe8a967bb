// Option value parsers shared by the commands.
import { InvalidArgumentError } from 'commander';

/** For repeatable options: each use adds to the list. */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export const wholeNumber = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
};

/** An error in how a command was typed: printed once with a hint, exit status 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** Exit statuses, as documented: 0 done, 1 failed, 2 the command line was wrong. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;
