// `nsdns query NAME [TYPE]`: one question to a DNS server, a small dig; with --netns, asked from
// inside a namespace by running this same command there under nsenter.
import { Option, type Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { recordTypeName } from '../wire/names.js';
import { UsageError, wholeNumber as int } from './options.js';
import type { QueryRequest } from './query-client.js';

const MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

export function queryCommand(program: Command): void {
  program.command('query')
    .description('ask a DNS server one question (a small dig)')
    .argument('<name>', 'name to look up')
    .argument('[type]', 'record type (A, AAAA, MX, TXT, ... or TYPEnn)', 'A')
    .option('--server <addr[:port]>', 'server to ask', '127.0.0.1:53')
    .option('--tcp', 'use TCP instead of UDP', false)
    .option('--timeout <ms>', 'how long to wait', int, 3000)
    .option('--json', 'print the reply as JSON', false)
    .option('--netns <target>', 'ask from inside this namespace (name, path or PID), at 127.0.0.11:53 unless --server is given')
    // Accepted and ignored: one alias (nsdns --socket X) then serves every command.
    .addOption(new Option('--socket <path>', 'control socket (not used by query)').hideHelp())
    .action(async (name: string, typeText: string, opts, command: Command) => {
      const type = recordTypeName(typeText);
      if (type === undefined) throw new UsageError(`unknown record type '${typeText.slice(0, 20)}' (A, AAAA, CNAME, MX, NS, PTR, SOA, SRV, TXT, ANY, ... or TYPEnn)\nSee 'nsdns query --help'.`);
      if (opts.netns !== undefined) {
        // Loaded here only: the namespace checks pull in the field schemas (zod), which no other command needs.
        const { resolveTarget } = await import('../plumbing/target.js');
        const { path: netns } = resolveTarget(opts.netns);
        const server = command.getOptionValueSource('server') === 'default' ? '127.0.0.11:53' : opts.server;
        const args = [MAIN, 'query', name, type, '--server', server, '--timeout', String(opts.timeout), ...(opts.tcp ? ['--tcp'] : []), ...(opts.json ? ['--json'] : [])];
        const { execa } = await import('execa');
        const r = await execa('nsenter', [`--net=${netns}`, '--', process.execPath, ...args], { stdio: 'inherit', reject: false });
        process.exitCode = r.exitCode ?? 1;
        return;
      }
      // Loaded here only, like the daemon: every other command starts faster without them.
      const [{ parseUpstream }, { formatResult, resultJson, sendQuery }] = await Promise.all([import('../resolver/upstream-address.js'), import('./query-client.js')]);
      const server = parseUpstream(opts.server);
      const req: QueryRequest = { name, type, host: server.host, port: server.port, tcp: opts.tcp, timeoutMs: opts.timeout };
      const result = await sendQuery(req);
      process.stdout.write(`${opts.json ? JSON.stringify(resultJson(result, req), null, 2) : formatResult(result, req)}\n`);
    });
}
