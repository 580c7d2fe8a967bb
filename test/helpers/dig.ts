// Real DNS clients for the tests: dig and kdig (as a person would run them), with their text
// output parsed into the parts the tests assert on.
import { execa } from 'execa';

export interface DigResult {
  status: string;
  flags: string[];
  answers: Array<{ name: string; ttl: number; type: string; data: string }>;
  authority: Array<{ name: string; ttl: number; type: string; data: string }>;
  ednsUdp: number | undefined;
  raw: string;
}

function parse(raw: string): DigResult {
  const status = /status: (\w+)/.exec(raw)?.[1] ?? 'NONE';
  const flags = (/;; flags: ([^;]*);/i.exec(raw)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
  const section = (title: string) => {
    const m = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(raw);
    if (!m) return [];
    return m[1].split('\n').filter((l) => l && !l.startsWith(';')).map((l) => {
      const [name, ttl, , type, ...data] = l.split(/\s+/);
      return { name, ttl: Number(ttl), type, data: data.join(' ') };
    });
  };
  const edns = /udp: (\d+)/.exec(raw);
  return { status, flags, answers: section('ANSWER'), authority: section('AUTHORITY'), ednsUdp: edns ? Number(edns[1]) : undefined, raw };
}

/** dig @server -p port ARGS; server given as "host:port". */
export async function dig(server: string, ...args: string[]): Promise<DigResult> {
  const [host, port] = splitServer(server);
  const { stdout } = await execa('dig', [`@${host}`, '-p', port, '+tries=1', '+time=6', ...args], { reject: false });
  return parse(stdout);
}

export async function kdig(server: string, ...args: string[]): Promise<DigResult> {
  const [host, port] = splitServer(server);
  const { stdout } = await execa('kdig', [`@${host}`, '-p', port, '+retry=0', '+time=6', ...args], { reject: false });
  return parse(stdout.replace(/;; (\w+) SECTION:/g, ';; $1 SECTION:'));
}

export async function digShort(server: string, ...args: string[]): Promise<string[]> {
  const [host, port] = splitServer(server);
  const { stdout } = await execa('dig', [`@${host}`, '-p', port, '+tries=1', '+time=6', '+short', ...args]);
  return stdout.split('\n').filter(Boolean);
}

/**
 * How long the server took to answer, as dig measured it (";; Query time"): without the time it
 * takes a busy machine to start dig, which is no part of what the server did.
 */
export function queryTimeMs(result: DigResult): number {
  const ms = /;; Query time: (\d+) msec/.exec(result.raw)?.[1];
  if (ms === undefined) throw new Error(`no query time in dig's output:\n${result.raw}`);
  return Number(ms);
}

function splitServer(server: string): [string, string] {
  const i = server.lastIndexOf(':');
  return [server.slice(0, i).replace(/^\[|\]$/g, ''), server.slice(i + 1)];
}
