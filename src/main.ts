#!/usr/bin/env node
// Entry point of the `nsdns` executable.
import './v8-flags.js';
import { run } from './cli/cli.js';

run(process.argv).catch((err) => {
  process.stderr.write(`nsdns: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(typeof err?.exitCode === 'number' ? err.exitCode : 1);
});
