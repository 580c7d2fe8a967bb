// Scale: a registry of NETWORKS networks × PER endpoints (default 1 000 × 100 = 100 000, issue #10's
// size), the first endpoint of each network living in its own namespace (1 000 namespaces served at
// 127.0.0.11). Measures the daemon's RSS, the time from start to "ready" and until every namespace is
// served, and the time from rewriting one registry file to the answer changing (10 changes), for
// this registry and for one a tenth of its size (does the cost per change grow with the registry?).
// Rows (SCALE_ROWS, comma-separated, all by default):
//   small                  NETWORKS/10 networks, no namespace
//   large                  NETWORKS networks, no namespace
//   small+namespaces-node  NETWORKS/10 networks and namespaces, the portable bind path (NSDNS_NATIVE=0)
//   large+namespaces       NETWORKS networks and namespaces, the bind helper that is built (native)
//   large+namespaces-node  the same on the portable path (~50 s at 1 000: not in the default set)
// SCALE_LOG=DIR keeps each row's daemon log there; SCALE_NODE_ARGS adds node flags to the daemon's. Writes $PB_WORK/scale.tsv. Queries go to
// 127.0.0.1 only; no upstream is configured. Namespaces are pb-sc* (SCALE_NS_PREFIX), removed at the end of each row.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { askA } from './ask.js';

const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/main.js');
const WORK = process.env.PB_WORK ?? '/tmp/pb-work';
const NETWORKS = Number(process.env.SCALE_NETWORKS ?? 1000);
const PER = Number(process.env.SCALE_PER ?? 100);
/** The namespaces' names: pb-sc0… as every bench name is pb-*; another prefix keeps a run apart from a concurrent bench's cleanup of pb-*. */
const NS_PREFIX = /^[a-z][a-z0-9-]{0,7}$/.test(process.env.SCALE_NS_PREFIX ?? '') ? process.env.SCALE_NS_PREFIX! : 'pb-sc';
/** Extra node flags for the daemon, e.g. SCALE_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' (NODE_OPTIONS refuses --cpu-prof). */
const NODE_ARGS = (process.env.SCALE_NODE_ARGS ?? '').split(' ').filter(Boolean);

function writeRegistry(dir: string, networks: number, per: number, namespaces: string[], changed = -1): void {
  for (let n = 0; n < networks; n++) {
    const endpoints = Array.from({ length: per }, (_, i) => ({
      name: `n${n}e${i}`,
      ipv4: `10.${100 + Math.floor(n / 250)}.${n % 250}.${10 + i + (n === 0 && i === 0 && changed >= 0 ? 100 : 0)}`,
      ...(i === 0 && namespaces[n] && { netns: `/run/netns/${namespaces[n]}` }),
    }));
    const file = path.join(dir, `net${n}.json`);
    writeFileSync(`${file}.tmp`, JSON.stringify({ name: `net${n}`, endpoints }));
    renameSync(`${file}.tmp`, file);
  }
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** The namespaces a row made, removed however the row ends (and on SIGINT/SIGTERM). */
const made = new Set<string>();
function removeNamespaces(): void {
  for (const ns of made) {
    try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* already gone */ }
    made.delete(ns);
  }
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { removeNamespaces(); process.exit(1); });

async function measure(label: string, networks: number, per: number, withNamespaces: boolean, helper: 'native' | 'node' = 'native'): Promise<Record<string, number | string>> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pb-scale-'));
  const state = mkdtempSync(path.join(tmpdir(), 'pb-scale-state-'));
  const namespaces = withNamespaces ? Array.from({ length: networks }, (_, i) => `${NS_PREFIX}${i}`) : [];
  let proc: ReturnType<typeof spawn> | undefined;
  try {
    for (const ns of namespaces) {
      execFileSync('ip', ['netns', 'add', ns]);
      made.add(ns);
      execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    writeRegistry(dir, networks, per, namespaces);
    const env = { ...process.env, ...(helper === 'node' && { NSDNS_NATIVE: '0' }) };
    const started = performance.now();
    proc = spawn(process.execPath, [...NODE_ARGS, MAIN, 'serve', '--registry', dir, '--listen', '127.0.0.1:0', '--state-dir', state,
      '--socket', path.join(state, 'sock'), '--no-resolv-conf', '--firewall', 'none', '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'inherit'], env });
    const logFile = process.env.SCALE_LOG ? path.join(process.env.SCALE_LOG, `${label}.log`) : undefined;
    if (logFile) { mkdirSync(path.dirname(logFile), { recursive: true }); writeFileSync(logFile, ''); }
    let port = 0;
    let readyMs = 0;
    let served = 0;
    let allServedMs = 0;
    const allServed = new Promise<void>((resolve, reject) => {
      // A daemon that dies, or a namespace it cannot serve, ends the row instead of hanging it.
      proc!.once('exit', (code) => reject(new Error(`scale ${label}: the daemon exited (${code}) before all namespaces were served`)));
      let buf = '';
      proc!.stdout!.on('data', (c: Buffer) => {
        if (logFile) appendFileSync(logFile, c);
        buf += c.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = JSON.parse(buf.slice(0, i)) as { msg: string; listeners?: Array<{ port: number }> };
          buf = buf.slice(i + 1);
          if (line.msg === 'ready') { readyMs = performance.now() - started; port = line.listeners![0].port; if (namespaces.length === 0) resolve(); }
          if (line.msg === 'serving DNS at 127.0.0.11:53 in namespace' && ++served === namespaces.length) { allServedMs = performance.now() - started; resolve(); }
          if (line.msg === 'cannot serve DNS in namespace') reject(new Error(`scale ${label}: a namespace could not be served (SCALE_LOG=DIR keeps the log)`));
        }
      });
    });
    await allServed;
    while (port === 0) await new Promise((r) => setTimeout(r, 10));
    if (namespaces.length > 0 && readyMs > allServedMs) allServedMs = readyMs;
    const rss = rssKb(proc.pid!);
    const changes: number[] = [];
    for (let k = 0; k < 10; k++) {
      const expect = `10.100.0.${k % 2 === 0 ? 110 : 10}`;
      const t0 = performance.now();
      writeRegistry(dir, 1, per, namespaces, k % 2 === 0 ? 1 : -1);
      while ((await askA(port, 'n0e0'))?.data !== expect) { /* poll */ }
      changes.push(performance.now() - t0);
      // Changes at least 100 ms apart: each one is an isolated edit, as a person or a tool makes them.
      await new Promise((r) => setTimeout(r, 100));
    }
    changes.sort((a, b) => a - b);
    return {
      label, endpoints: networks * per, networks, namespaces: namespaces.length, helper: namespaces.length > 0 ? helper : '-', rss_mb: (rss / 1024).toFixed(1),
      ready_ms: readyMs.toFixed(0), all_namespaces_served_ms: allServedMs ? allServedMs.toFixed(0) : '-',
      change_median_ms: changes[5].toFixed(1), change_max_ms: changes[9].toFixed(1),
    };
  } finally {
    if (proc && proc.exitCode === null) {
      const exited = new Promise((r) => proc!.on('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    removeNamespaces();
    rmSync(dir, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  }
}

const SMALL = Math.max(1, Math.round(NETWORKS / 10));
const plans: Record<string, () => Promise<Record<string, number | string>>> = {
  small: () => measure('small', SMALL, PER, false),
  large: () => measure('large', NETWORKS, PER, false),
  'small+namespaces-node': () => measure('small+namespaces-node', SMALL, PER, true, 'node'),
  'large+namespaces': () => measure('large+namespaces', NETWORKS, PER, true),
  'large+namespaces-node': () => measure('large+namespaces-node', NETWORKS, PER, true, 'node'),
};
const wanted = (process.env.SCALE_ROWS ?? 'small,large,small+namespaces-node,large+namespaces').split(',').filter(Boolean);
for (const w of wanted) if (!plans[w]) throw new Error(`SCALE_ROWS: unknown row ${JSON.stringify(w)} (known: ${Object.keys(plans).join(', ')})`);
const rows: Array<Record<string, number | string>> = [];
for (const w of wanted) rows.push(await plans[w]());
mkdirSync(WORK, { recursive: true });
const out = path.join(WORK, 'scale.tsv');
writeFileSync(out, `${Object.keys(rows[0]).join('\t')}\n`);
for (const r of rows) appendFileSync(out, `${Object.values(r).join('\t')}\n`);
process.stdout.write(readFileSync(out, 'utf8'));
