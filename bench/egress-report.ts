// Writes the figures of bench/egress.ts: RESULTS_DIR/egress.tsv (one row per figure) and
// egress.md (the figures as ratios side by side, with the machine's load).
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import type { ByNamespaces, Percentiles, UpdateCost } from './egress-updates.js';

export interface Figures {
  date: string;
  load: number[];
  rounds: number;
  latQueries: number;
  cpuQueries: number;
  grace: number;
  /** egress.maxLearned of the bench's daemon. */
  maxLearned: number;
  /** Queries not answered within 2 s (or not with an address), per namespace, in runs 1 and 2. */
  failed: { policy: number; open: number };
  latency: { policy: Percentiles; open: Percentiles };
  /** Daemon CPU per query, µs (median over rounds); nft: the daemon's `nft -i` per allowed query. */
  cpuUs: { policy: number; open: number; nft: number | undefined; rounds: { policy: number[]; open: number[] } };
  /** The same, with one name asked again and again (cache hits; its address already open). */
  cachedCpuUs: { policy: number; open: number; rounds: { policy: number[]; open: number[] } };
  /** The same, with distinct names another namespace asked first (cache hits; each address new to the asker). */
  sharedCpuUs: { policy: number; open: number; rounds: { policy: number[]; open: number[] } };
  held: { elements: number; allowedAnswers: number; ttl: number };
  busy: { rate: number; secs: number; ttl: number; samples: number[]; failed: number; predicted: number };
  update: UpdateCost;
  byNamespaces: ByNamespaces[];
  nftVersion: string;
}

// A figure left out of the run (EG_ONLY) is shown as a dash.
const shown = (x: number | undefined, text: (x: number) => string) => (x === undefined || Number.isNaN(x) ? '–' : text(x));
const ms = (x: number | undefined) => shown(x, (v) => `${v.toFixed(3)} ms`);
const us = (x: number | undefined) => shown(x, (v) => `${v.toFixed(1)} µs`);
const ratio = (a: number | undefined, b: number | undefined) => shown(a === undefined || b === undefined ? undefined : a / b, (v) => `${v.toFixed(2)}×`);

export function writeEgressReport(dir: string, f: Figures): void {
  mkdirSync(dir, { recursive: true });
  const { latency: l, cpuUs: c, update: u, busy: b } = f;
  const added = { p50: l.policy.p50 - l.open.p50, p99: l.policy.p99 - l.open.p99 };
  const withNft = c.nft === undefined ? undefined : c.policy + c.nft;
  const cached = f.cachedCpuUs;
  const shared = f.sharedCpuUs;
  const perRound = (r: { policy: number[]; open: number[] }) => `policy ${r.policy.map((x) => x.toFixed(1)).join(', ')}; none ${r.open.map((x) => x.toFixed(1)).join(', ')}`;
  const firstChannel = f.byNamespaces.find((r) => r.via === 'nft') ?? f.byNamespaces[0];
  const steady = b.samples.slice(Math.min(b.samples.length - 1, b.ttl + f.grace + 1));
  const tsv = [
    ['figure', 'policy', 'no_policy', 'ratio'],
    ['latency_p50_ms', l.policy.p50, l.open.p50, l.policy.p50 / l.open.p50],
    ['latency_p99_ms', l.policy.p99, l.open.p99, l.policy.p99 / l.open.p99],
    ['daemon_cpu_us_per_query', c.policy, c.open, c.policy / c.open],
    ['daemon_cpu_us_per_cached_query', cached.policy, cached.open, cached.policy / cached.open],
    ['daemon_cpu_us_per_cached_query_new_address', shared.policy, shared.open, shared.policy / shared.open],
    ['daemon_and_nft_cpu_us_per_query', withNft ?? '', c.open, withNft === undefined ? '' : withNft / c.open],
    ['update_p50_ms_netlink_vs_channel', u.netlink.p50, u.channel.p50, u.netlink.p50 / u.channel.p50],
    ['update_p99_ms_netlink_vs_channel', u.netlink.p99, u.channel.p99, u.netlink.p99 / u.channel.p99],
    ['update_p50_ms_channel_vs_process', u.channel.p50, u.process.p50, u.channel.p50 / u.process.p50],
    ['update_p99_ms_channel_vs_process', u.channel.p99, u.process.p99, u.channel.p99 / u.process.p99],
    ['set_elements_after_runs', f.held.elements, f.held.allowedAnswers, f.held.elements / f.held.allowedAnswers],
    ['set_elements_steady_median', steady.length ? steady.sort((x, y) => x - y)[steady.length >> 1] : '', b.predicted, ''],
  ].map((r) => r.map((x) => (typeof x === 'number' ? Number(x.toFixed(4)) : x)).join('\t')).join('\n');
  writeFileSync(path.join(dir, 'egress.tsv'), `${tsv}\n`);

  const md = `# Egress by name (bench/egress.sh)

One daemon, one fake upstream on loopback (every answer a new address in 10.137.128.0/17, so every
allowed lookup adds to the set), four namespaces on one network: \`pb-eg-pol\`, \`pb-eg-first\` and
\`pb-eg-busy\` connected with \`--egress-allow '*.allow.test'\`, \`pb-eg-open\` without a policy. Each namespace asks
127.0.0.11 for names of its own, one at a time; rounds alternate which namespace goes first.
Grace ${f.grace} s (config \`egress.grace\`). Run ${f.date}.

**The machine was busy**: ${cpus().length} cores, load average ${f.load.map((x) => x.toFixed(2)).join(' / ')} (1/5/15 min)
at the end of the run, from other work. Absolute times are high and noisy; the ratios, measured
side by side in one run, are the figures to read.

| figure | with policy | without policy | policy / none | target (issue 22) |
| --- | --- | --- | --- | --- |
| lookup latency p50 (${f.rounds} × ${f.latQueries} queries each) | ${ms(l.policy.p50)} | ${ms(l.open.p50)} | ${ratio(l.policy.p50, l.open.p50)} | |
| lookup latency p99 | ${ms(l.policy.p99)} | ${ms(l.open.p99)} | ${ratio(l.policy.p99, l.open.p99)} | |
| **added by learning**, p50 / p99 | ${ms(added.p50)} / ${ms(added.p99)} | | | p99 added < 2 ms |
| **daemon CPU per query**, forwarded, each answer a new address (median of ${f.rounds} rounds × ${f.cpuQueries}) | ${us(c.policy)} | ${us(c.open)} | **${ratio(c.policy, c.open)}** | ≤ 1.3× |
| **the same, cache hits**, one name asked again (its address already open) | ${us(cached.policy)} | ${us(cached.open)} | **${ratio(cached.policy, cached.open)}** | ≤ 1.3× |
| **the same, cache hits whose address is new to the namespace** (another one asked first) | ${us(shared.policy)} | ${us(shared.open)} | **${ratio(shared.policy, shared.open)}** | ≤ 1.3× |
| daemon + its \`nft -i\` CPU per query (policies only: learned addresses go over netlink) | ${withNft === undefined ? '—' : us(withNft)} | ${us(c.open)} | ${withNft === undefined ? '—' : ratio(withNft, c.open)} | |

Queries lost (no address within 2 s; left out of the percentiles): with policy ${f.failed.policy}, without ${f.failed.open}.

CPU is every thread's on-CPU time (\`/proc/PID/task/*/schedstat\`) over the queries, daemon only
in the first CPU row; the second adds the daemon's long-lived \`nft -i\`, which writes policy
changes (learned addresses go to the kernel over the daemon's own netlink socket, so their
cost is in the first row). Each namespace asks names of its own: the cache is shared by clients
of the same upstreams, so one namespace's names would be cache hits for the other.

- **Forwarded**: every query goes upstream and brings a new address (a kernel write per answer).
  Per round, µs per query: ${perRound(c.rounds)} (even rounds: policy first).
- **Cache hits, address open**: one name asked ${f.cpuQueries} times per round, its address open
  until past the cached TTL, so nothing is written. Per round: ${perRound(cached.rounds)}.
- **Cache hits, address new**: \`pb-eg-first\` asked the names first (not counted); the measured
  namespace gets each from the cache, and under a policy its address is written to that
  namespace's set: the dearest case, a kernel write on the cheapest answer. Per round: ${perRound(shared.rounds)}.

## Set elements a busy sandbox holds

| what | elements in the IPv4 learned set | expected |
| --- | --- | --- |
| \`pb-eg-pol\` after the runs above (${f.held.allowedAnswers} allowed answers, TTL ${f.held.ttl} s + grace) | ${f.held.elements} | ${f.held.allowedAnswers} (one per answer) |
| \`pb-eg-busy\`: ${b.rate} new names a second for ${b.secs} s, TTL ${b.ttl} s, grace ${f.grace} s; read each second | ${b.samples.join(', ')} | rate × (TTL + grace) = ${b.predicted} |

Read with \`nft -j list set inet pb_eg_egress l4_<id>\`. A sandbox holds one element per distinct
address answered within the last TTL + grace: its rate of new addresses times (TTL + grace). The
bench's daemon runs with \`egress.maxLearned: ${f.maxLearned}\`, above what any of its namespaces
holds, so no answer here is refused for a full set (the default, 32768, would be close to the
upstream's 32768 distinct addresses).
${b.failed > 0 ? `${b.failed} of the busy run's queries failed (no answer in 2 s, or not an address).\n` : ''}
## One update: netlink, the nft channel, a process per update

| | over netlink (the daemon's way) | through the channel (one \`nft -i\`, the fallback) | one \`nft -f -\` per update | netlink / channel | channel / process |
| --- | --- | --- | --- | --- | --- |
| p50 | ${ms(u.netlink.p50)} (${u.netlink.n} updates) | ${ms(u.channel.p50)} (${u.channel.n}) | ${ms(u.process.p50)} (${u.process.n}) | ${ratio(u.netlink.p50, u.channel.p50)} | ${ratio(u.channel.p50, u.process.p50)} |
| p99 | ${ms(u.netlink.p99)} | ${ms(u.channel.p99)} | ${ms(u.process.p99)} | ${ratio(u.netlink.p99, u.channel.p99)} | ${ratio(u.channel.p99, u.process.p99)} |

One element with a timeout into a set of a table of its own, awaited one at a time.

## One learned address as the number of governed namespaces grows

\`EgressFirewall.learn\` (the daemon's path: one address, awaited) into a fresh egress table with
N namespaces under a policy (their links need not exist), in this process, over netlink (the
default) and through the nft channel (the fallback when the netlink socket cannot be opened).

Why the channel's cost grows: before each command, nft (${f.nftVersion}) refreshes its cache, and for \`add element\`
that cache includes the elements of **every interval set in the host's ruleset**, in any table
and family, anonymous ones included (strace: one \`NFT_MSG_GETSETELEM\` dump per such set; 40
anonymous interval sets in an unrelated inet table add 40 dumps to every update; the learned sets
themselves, timeout sets, are not read). Each governed namespace brings one: its bridge
anti-spoof chain's \`ip6 saddr { ::, fe80::/10 }\`. So the cost of one learned address follows the
number of governed namespaces, and the interval sets of other nftables users on the host. Over
netlink (\`NFT_MSG_NEWSETELEM\` in a batch, src/egress/nft-netlink.ts) nothing is read back.

Interactive nft also keeps a history (libedit): it reads \`$HOME/.nft.history\` at start, adds
each line, and writes it all back at exit. The channel runs it with a HOME that is not a
directory, so it reads and writes none; before that, root's history file here had grown to 8.4 MB
(every root \`nft -i\` on the host shares it) and 85 % of \`nft -i\`'s CPU was libedit's \`history()\`
(\`perf record\`): 2-6 ms per update instead of ~0.4-0.5 ms. Without the file, the history in
memory still makes each line dearer than the last (~0.43 ms of nft CPU per update fresh, ~1.5-2 ms
after 6 000-10 000 lines, 74 % in \`history()\`), so the channel replaces its process every 1 000
lines (\`LINES_PER_PROCESS\`).

| governed namespaces | written | learn p50 | learn p99 | \`nft -i\` CPU per update | caller's CPU per update | caller + nft CPU / channel's first row |
| --- | --- | --- | --- | --- | --- | --- |
${f.byNamespaces.map((r) => `| ${r.governed} | ${r.via === 'netlink' ? 'over netlink' : 'through nft -i'} | ${ms(r.p50)} | ${ms(r.p99)} | ${us(r.nftUs)} | ${us(r.daemonUs)} | ${ratio(r.nftUs + r.daemonUs, firstChannel === undefined ? undefined : firstChannel.nftUs + firstChannel.daemonUs)} |`).join('\n')}

## Run it

\`\`\`sh
sudo bash bench/egress.sh          # ~1-2 minutes; writes bench/results/egress.md and egress.tsv
sudo EG_ROUNDS=2 EG_QUERIES=500 RESULTS_DIR=/tmp/eg bash bench/egress.sh   # a quick trial
\`\`\`

Needs root, nft and a built tree (\`npm run build\`). Everything it makes is named \`pb-eg*\`
(namespaces), \`pbeg*\` (links), \`pb_eg*\` (nft tables), in 10.137.0.0/16, and is removed at the
end or on INT/TERM. Settings: \`EG_ROUNDS\` (4), \`EG_QUERIES\` (1000), \`EG_CPU_QUERIES\` (2000), \`EG_WARM\` (3000),
\`EG_GRACE\` (5), \`EG_RATE\` (200), \`EG_BUSY_SECS\` (15), \`EG_BUSY_TTL\` (2), \`EG_UPDATES\` (500),
\`EG_PROCESS_UPDATES\` (100), \`EG_GOVERNED\` ("1 10 40"), \`EG_UPSTREAM_PORT\` (16850); \`EG_ONLY\`
(e.g. \`shared,cpu\`: only those figures, of latency, cpu, hit, shared, busy and update), \`EG_PROFILE=DIR\`
(a V8 CPU profile of the daemon), \`EG_NODE_FLAGS\` (more node flags for the daemon). Each CPU run waits
first until the daemon is idle, so that garbage and compiling left by the run before are not counted.
`;
  writeFileSync(path.join(dir, 'egress.md'), md);
  process.stdout.write(md);
}
