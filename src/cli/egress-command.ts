// `nsdns egress log [ENDPOINT|NETNS]`: the recent egress decisions of namespaces under a policy
// (which names were answered, which refused), and the reading of policy files for
// `network create --egress-policy`: the CLI sends the parsed list, the daemon checks it again.
import { open } from 'node:fs/promises';
import type { Command } from 'commander';
import { NsdnsError } from '../errors.js';
import { parsePolicyText, POLICY_FILE_MAX_BYTES } from '../egress/policy.js';
import type { EgressRule } from '../registry/egress-rules.js';
import { printable } from '../registry/fields.js';
import { call } from './control-client.js';
import { socketOption } from './options.js';
import { print } from './print.js';

/** One namespace's decisions, as the daemon answers egress.log. */
interface NamespaceLog {
  netns: string;
  endpoints: string[];
  decisions: Array<{ time: string; name: string; allowed: boolean }>;
}

export function egressCommands(program: Command): void {
  const egress = program.command('egress').description('egress by name: what namespaces under a policy resolved (docs/egress.md); needs a running daemon');

  egress.command('log')
    .description('recent decisions (name, allowed or denied) of each namespace under an egress policy, oldest first')
    .argument('[target]', 'an endpoint (NETWORK/NAME, name or id) or a namespace (name or path); default: every one')
    .option('--json', 'print JSON', false)
    .addOption(socketOption())
    .action(async (target: string | undefined, o) => {
      const logs = await call<NamespaceLog[]>(o.socket, 'egress.log', target === undefined ? {} : { target });
      if (o.json) return print(logs);
      for (const log of logs) {
        print(`${log.netns} (${log.endpoints.join(', ')}):`);
        if (log.decisions.length === 0) print('  (no decisions yet)');
        for (const d of log.decisions) print(`  ${d.time}  ${d.allowed ? 'allowed' : 'denied '}  ${d.name}`);
      }
    });
}

/** A policy file read and checked (size first: a large file is refused before it is read). */
export async function readPolicyFile(file: string): Promise<EgressRule[]> {
  let text: string;
  try {
    const handle = await open(file, 'r');
    try {
      const { size, isFile } = await handle.stat().then((s) => ({ size: s.size, isFile: s.isFile() }));
      if (!isFile) throw new NsdnsError('ERR_BAD_REQUEST', `--egress-policy ${printable(file, 200)}: not a regular file`);
      if (size > POLICY_FILE_MAX_BYTES) throw new NsdnsError('ERR_BAD_REQUEST', `--egress-policy ${printable(file, 200)}: larger than ${POLICY_FILE_MAX_BYTES} bytes`);
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof NsdnsError) throw err;
    throw new NsdnsError('ERR_BAD_REQUEST', `--egress-policy ${printable(file, 200)}: ${(err as NodeJS.ErrnoException).code ?? 'cannot be read'}`);
  }
  return parsePolicyText(text, file);
}
