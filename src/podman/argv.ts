// aardvark-dns's command line, exactly as netavark gives it: `--config DIR -p PORT run` (options
// before the subcommand, as clap takes them). Anything else is a usage error with clap's exit code 2.

export interface RunArgs {
  config: string;
  port: number;
  /** Accepted for compatibility (`-f`); the drop-in answers under dns.podman whatever it says. */
  filterSearchDomain?: string;
}

export type Command =
  | { kind: 'run'; args: RunArgs }
  | { kind: 'version' }
  | { kind: 'help' }
  | { kind: 'usage'; message: string };

export const USAGE = `Usage: aardvark-dns [-c|--config DIR] [-p|--port PORT] [-f|--filter-search-domain DOMAIN] run | version

nsdns serving as Podman's DNS server (a drop-in for aardvark-dns): netavark runs
\`aardvark-dns --config DIR -p PORT run\`; the server answers the container names in the
files of DIR on every listen address they name, writes DIR/aardvark.pid and reloads on SIGHUP.`;

/** Exit code of a usage error (clap's). */
export const USAGE_EXIT = 2;

const OPTIONS: Record<string, 'config' | 'port' | 'filter'> = {
  '-c': 'config', '--config': 'config', '-p': 'port', '--port': 'port', '-f': 'filter', '--filter-search-domain': 'filter',
};

const usage = (message: string): Command => ({ kind: 'usage', message: `error: ${message}\n\n${USAGE}` });

export function parseArgv(argv: readonly string[]): Command {
  const values: Partial<Record<'config' | 'port' | 'filter', string>> = {};
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') return { kind: 'help' };
    if (arg === '-V' || arg === '--version') return { kind: 'version' };
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const option = OPTIONS[flag];
    if (option === undefined) break;
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) return usage(`${flag} needs a value`);
    if (values[option] !== undefined) return usage(`${flag} given twice`);
    values[option] = value;
  }
  const command = argv[i];
  if (command === undefined) return usage('a subcommand is required (run or version)');
  if (command.startsWith('-')) return usage(`unknown option ${JSON.stringify(command.slice(0, 40))}`);
  if (i + 1 < argv.length) return usage(`unexpected argument after ${command}`);
  if (command === 'version') return { kind: 'version' };
  if (command === 'help') return { kind: 'help' };
  if (command !== 'run') return usage(`unknown subcommand ${JSON.stringify(command.slice(0, 40))}`);
  if (values.config === undefined || values.config === '') return usage('--config DIR is required');
  const port = values.port === undefined ? 5533 : Number(values.port);
  if (!/^\d{1,5}$/.test(values.port ?? '5533') || port < 1 || port > 65535) return usage('--port must be a port number (1-65535)');
  return { kind: 'run', args: { config: values.config, port, ...(values.filter !== undefined && { filterSearchDomain: values.filter }) } };
}
