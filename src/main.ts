#!/usr/bin/env node
// Entry point of the `nsdns` executable.
import './v8-flags.js';
import { run } from './cli/cli.js';

run(process.argv).catch((err) => {
  // `reported`: already logged (with its stack) where it happened; one failure, one line.
  if (err?.reported !== true) process.stderr.write(`nsdns: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(typeof err?.exitCode === 'number' ? err.exitCode : 1);
});
