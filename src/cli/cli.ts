// The command line: the program, its conventions (help, version, usage errors, exit statuses) and
// its commands. `nsdns serve` runs the daemon; the other commands are its clients.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { EXIT, UsageError } from './options.js';
import { serveCommand } from './serve-command.js';
import { queryCommand } from './query-command.js';
import { networkCommands } from './network-commands.js';
import { debugCommand } from './debug-command.js';
import { endpointCommands } from './endpoint-commands.js';
import { opsCommands } from './ops-commands.js';
import { hostDnsCommand } from './host-dns-command.js';
import { egressCommands } from './egress-command.js';

/** The version in package.json (dist/src/cli/cli.js → the package root). */
function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The full command line of `command` (nsdns network ls), for the hint after a usage error. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Commander's own output, the docker way: help once on stdout (also for `nsdns network` with no
 * subcommand) with status 0; a usage error once, with a one-line hint and not the whole help,
 * status 2. Applied to every command, since each handles its own errors.
 */
function conventions(command: Command): void {
  command.configureOutput({ writeErr: (text) => process.stdout.write(text), outputError: () => {} });
  command.exitOverride((err: CommanderError) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') {
      throw Object.assign(new Error(''), { exitCode: EXIT.ok, silent: true });
    }
    throw new UsageError(`${err.message.replace(/^error: /, '').trimEnd()}\nSee '${commandPath(command)} --help'.`);
  });
  for (const sub of command.commands) conventions(sub);
}


export async function run(argv: string[]): Promise<void> {
  const program = new Command('nsdns')
    .description('DNS and service discovery for Linux network namespaces')
    .version(version(), '-v, --version', 'print the version')
    .addHelpText('after', '\nExit status: 0 done, 1 failed, 2 the command line was wrong.'
      + "\n\nPodman: bin/aardvark-dns (nsdns-aardvark-dns) is a drop-in for Podman's DNS server; see docs/podman.md.");

  serveCommand(program);
  queryCommand(program);
  networkCommands(program);
  debugCommand(program);
  endpointCommands(program);
  opsCommands(program);
  hostDnsCommand(program);
  egressCommands(program);
  conventions(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // Help and version were printed: nothing more to say (main.js prints every other error once).
    if ((err as { silent?: boolean }).silent === true && (err as { exitCode?: number }).exitCode === EXIT.ok) {
      process.exitCode = EXIT.ok;
      return;
    }
    throw err;
  }
}
