// Option value parsers shared by the commands: they turn what was typed into the shape a request
// takes (a number, milliseconds, an object); what the values mean is the daemon's to judge.
import { InvalidArgumentError, Option } from 'commander';
import { DEFAULT_SOCKET } from '../daemon/control-protocol.js';
import { parseDuration } from '../health/spec.js';

/** For repeatable options: each use adds to the list. */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export const wholeNumber = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number');
  return n;
};

/** A commander parser for docker-style durations (5s, 500ms, 1m30s), in milliseconds. */
export function duration(flag: string): (value: string) => number {
  return (value) => {
    const ms = parseDuration(value);
    if (ms === undefined) throw new InvalidArgumentError(`${flag}: expected a duration such as 5s, 500ms or 1m30s`);
    return ms;
  };
}

/** Repeated `key=value` options as an object (the daemon checks keys and values). */
export function keyValues(flag: string, items: string[] | undefined, command: string): Record<string, string> {
  // fromEntries: a "__proto__" key stays a key, for the daemon to refuse.
  return Object.fromEntries((items ?? []).map((kv) => {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`${flag} "${kv.slice(0, 40)}": expected key=value\nSee 'nsdns ${command} --help'.`);
    return [kv.slice(0, i), kv.slice(i + 1)];
  }));
}

/** `--socket PATH`, taken by every command that talks to the daemon. */
export const socketOption = (): Option => new Option('--socket <path>', 'control socket of the daemon').default(DEFAULT_SOCKET);

/** An error in how a command was typed: printed once with a hint, exit status 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** Exit statuses, as documented: 0 done, 1 failed, 2 the command line was wrong. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;
