// Turns a comparison run of two nsdns builds (bench/compare.sh) into compare.md and compare.tsv:
// per figure the before and after medians over the interleaved rounds, their ratio, the noise
// between rounds, and one verdict per stage. Only reads and writes files.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fmt, median, num, ratio, readTsv, type Row } from './tsv.js';

type Build = 'before' | 'after';
type Stage = 'dns' | 'provision' | 'attack';

/** One figure of one stage, one value per round and build (NaN where that round has none). */
interface Figure {
  stage: Stage;
  name: string;
  better: 'lower' | 'higher';
  digits: number;
  /** The smallest difference worth a verdict, in the figure's unit; default: MIN_RELATIVE of the before median. */
  least?: number;
  before: Map<number, number>;
  after: Map<number, number>;
}

type Verdict = 'within noise' | 'worse beyond noise' | 'better beyond noise' | 'not judged (one round)' | 'no figures';

interface Judged extends Figure {
  medBefore: number;
  medAfter: number;
  /** The larger of the two builds' spreads between rounds (max - min), in the figure's unit. */
  noise: number;
  /** Rounds in which after was worse than before, of the rounds that have both. */
  worseRounds: number;
  pairedRounds: number;
  verdict: Verdict;
}

const dir = process.argv[2] ?? 'bench/results';
const tsv = (name: string): Row[] => readTsv(path.join(dir, name));
const STAGE_TITLE: Record<Stage, string> = { dns: 'Answers (dns)', provision: 'Provisioning (provision)', attack: 'Attacks (attack)' };

const rounds = (rows: Row[]) => [...new Set(rows.map((r) => Number(r.round)))].sort((a, b) => a - b);

// A difference under this share of the before figure is not called a change even when the rounds
// agree: on a quiet machine rounds can agree more closely than any difference a user would notice.
const MIN_RELATIVE = 0.05;

/** Builds a figure from a per-round reduction of the rows of each build. */
function figure(stage: Stage, name: string, better: Figure['better'], digits: number, rows: Row[], value: (roundRows: Row[]) => number, least?: number): Figure {
  const per = (build: Build) => {
    const mine = rows.filter((r) => r.build === build);
    return new Map(rounds(mine).map((n) => [n, value(mine.filter((r) => Number(r.round) === n))]));
  };
  return { stage, name, better, digits, least, before: per('before'), after: per('after') };
}

/**
 * Beyond noise takes three things: every after round on one side of every before round (by chance
 * alone 1 time in C(2n, n) each way: 1 in 20 with 3 rounds, 1 in 6 with 2), the medians further
 * apart than either build's spread between rounds, and a difference large enough to matter.
 * Together, for a build against itself, they flag a figure about 1 time in 50 each way at 3 rounds
 * (a simulation with normal noise); either of the first two alone, several times as often.
 */
function judge(f: Figure): Judged {
  const finite = (m: Map<number, number>) => [...m.values()].filter(Number.isFinite);
  const [b, a] = [finite(f.before), finite(f.after)];
  const spread = (v: number[]) => (v.length ? Math.max(...v) - Math.min(...v) : NaN);
  const medBefore = median(b);
  const medAfter = median(a);
  const noise = Math.max(spread(b), spread(a));
  const worse = (after: number, before: number) => (f.better === 'lower' ? after > before : after < before);
  const paired = [...f.after.keys()].filter((n) => Number.isFinite(f.after.get(n)!) && Number.isFinite(f.before.get(n) ?? NaN));
  const allWorse = a.every((x) => b.every((y) => worse(x, y)));
  const allBetter = a.every((x) => b.every((y) => worse(y, x)));
  const matters = Math.abs(medAfter - medBefore) > Math.max(noise, f.least ?? MIN_RELATIVE * Math.abs(medBefore));
  let verdict: Verdict;
  if (b.length === 0 || a.length === 0) verdict = 'no figures';
  else if (b.length < 2 || a.length < 2) verdict = 'not judged (one round)';
  else if (matters && allWorse) verdict = 'worse beyond noise';
  else if (matters && allBetter) verdict = 'better beyond noise';
  else verdict = 'within noise';
  return {
    ...f, medBefore, medAfter, noise, verdict, pairedRounds: paired.length,
    worseRounds: paired.filter((n) => worse(f.after.get(n)!, f.before.get(n)!)).length,
  };
}

/**
 * Per variant: the best saturation run of the round (its qps, its CPU per query), and the runs at
 * 10k qps (fixed-rate and percentile runs alike: the server's CPU per query does not depend on
 * whether dnsperf records each answer).
 */
function dnsFigures(rows: Row[]): Figure[] {
  const out: Figure[] = [];
  for (const label of [...new Set(rows.map((r) => r.label))]) {
    const mine = rows.filter((r) => r.label === label);
    const best = (rr: Row[]) => rr.filter((r) => r.kind === 'sat').sort((x, y) => num(y.qps) - num(x.qps))[0];
    const at10k = (rr: Row[]) => rr.filter((r) => (r.kind === 'rate' || r.kind === 'pct') && r.setting.includes('-Q 10000'));
    out.push(
      figure('dns', `${label}: saturation qps`, 'higher', 0, mine, (rr) => num(best(rr)?.qps)),
      figure('dns', `${label}: CPU µs/query at saturation`, 'lower', 1, mine, (rr) => num(best(rr)?.srv_us_per_q)),
      figure('dns', `${label}: CPU µs/query at 10k qps`, 'lower', 1, mine, (rr) => median(at10k(rr).map((r) => num(r.srv_us_per_q)))),
      figure('dns', `${label}: p99 ms at 10k qps`, 'lower', 3, mine, (rr) => median(rr.filter((r) => r.kind === 'pct').map((r) => num(r.p99_ms)))),
    );
  }
  return out;
}

/** Per kind of provisioning run: the median over the namespaces of each timed step, per round. */
function provisionFigures(rows: Row[]): Figure[] {
  const out: Figure[] = [];
  const steps: Array<[string, string]> = [['connect_ms', 'connect'], ['ready_ms', 'until its name answers'], ['disconnect_ms', 'disconnect']];
  for (const kind of [...new Set(rows.map((r) => r.kind))]) {
    const mine = rows.filter((r) => r.kind === kind);
    const [base, fallback] = kind.split('-fallback');
    const path = fallback === undefined ? '' : ' (NSDNS_NATIVE=0)';
    const what = base === 'serial' ? 'CLI, one at a time' : base === 'socket' ? 'control socket' : `${mine[0].i} CLI connects at once`;
    for (const [col, step] of steps) {
      if (!mine.some((r) => Number.isFinite(num(r[col])))) continue;
      const name = `${what}${path}: ${base === 'parallel' ? 'ms in all' : `${step} ms`}`;
      out.push(figure('provision', name, 'lower', 1, mine, (rr) => median(rr.map((r) => num(r[col])))));
    }
  }
  return out;
}

/** Per server and attack: the client's p99 and losses, and the server's memory growth over its loaded baseline. */
function attackFigures(rows: Row[]): Figure[] {
  const out: Figure[] = [];
  const judgedRows = rows.filter((r) => r.alive !== 'n/a');
  for (const key of [...new Set(judgedRows.map((r) => `${r.server} ${r.attack}`))]) {
    const mine = judgedRows.filter((r) => `${r.server} ${r.attack}` === key);
    const one = (rr: Row[], f: (r: Row) => number) => median(rr.map(f));
    out.push(
      figure('attack', `${key}: client p99 ms`, 'lower', 2, mine, (rr) => one(rr, (r) => num(r.legit_p99_ms))),
      // Losses and memory growth are often near 0, where 5 % is nothing: 10 queries (1 % of a second's
      // client queries) and 5 MB (a tenth of the attack target's 50 MB) are the least that counts.
      figure('attack', `${key}: client queries lost`, 'lower', 0, mine, (rr) => one(rr, (r) => num(r.legit_lost)), 10),
      figure('attack', `${key}: memory growth MB`, 'lower', 1, mine, (rr) => one(rr, (r) => num(r.rss_max_mb) - num(r.rss_base_mb)), 5),
    );
    // The client's TCP probes time out on a loaded machine too: a figure judged against the noise, not a check.
    if (mine.some((r) => r.legit_tcp_sent !== '-')) {
      out.push(figure('attack', `${key}: client TCP probes unanswered`, 'lower', 0, mine, (rr) => one(rr, (r) => num(r.legit_tcp_sent) - num(r.legit_tcp_ok)), 2));
    }
  }
  return out;
}

/** The attack targets that load does not explain (up and answering, right answers, no leak): which did a build miss, in which rounds. */
function attackChecks(rows: Row[], build: Build): Map<string, string[]> {
  const failed = new Map<string, string[]>();
  for (const r of rows.filter((x) => x.build === build && x.alive !== 'n/a')) {
    const misses: string[] = [];
    if (r.alive !== 'yes') misses.push(r.alive);
    if (num(r.legit_errors) > 0) misses.push('wrong answers');
    if (r.attack === 'tenant' && !(num(r.attack_leaked) === 0)) misses.push('leaked');
    const key = `${r.server} ${r.attack}`;
    for (const m of misses) failed.set(key, [...(failed.get(key) ?? []), `${m} (round ${r.round})`]);
  }
  return failed;
}

function stageVerdict(judged: Judged[], newMisses: string[], failed: Row[]): string {
  const incomplete = failed.length ? ` (incomplete: the stage failed for ${failed.map((f) => `${f.build} in round ${f.round}`).join(', ')})` : '';
  if (judged.length === 0) return `not run${incomplete}`;
  const worse = judged.filter((j) => j.verdict === 'worse beyond noise').map((j) => j.name);
  const better = judged.filter((j) => j.verdict === 'better beyond noise').length;
  const tally = ` (${judged.length} figures: ${worse.length} worse, ${better} better beyond noise)`;
  const problems = [...worse, ...newMisses];
  if (problems.length > 0) return `**possible regression**: ${problems.join('; ')}${tally}; a rerun of this stage alone with more ROUNDS tells a change from chance${incomplete}`;
  if (judged.some((j) => j.verdict !== 'within noise' && j.verdict !== 'better beyond noise')) return `not judged: one round gives no noise to judge by (ROUNDS >= 2)${incomplete}`;
  return `no regression${tally}${incomplete}`;
}

const perRound = (m: Map<number, number>, digits: number) => [...m.entries()].map(([n, v]) => `${n}:${fmt(v, digits)}`).join(',');
const noisePct = (j: Judged) => (Number.isFinite(j.noise) && j.medBefore > 0 ? `±${((100 * j.noise) / j.medBefore).toFixed(0)}%` : Number.isFinite(j.noise) ? `±${fmt(j.noise, j.digits)}` : '-');

const attackRows = tsv('compare-attack.tsv');
const failedRuns = tsv('compare-failed.tsv');
const judged = [...dnsFigures(tsv('compare-dns.tsv')), ...provisionFigures(tsv('compare-provision.tsv')), ...attackFigures(attackRows)].map(judge);
const [checksBefore, checksAfter] = [attackChecks(attackRows, 'before'), attackChecks(attackRows, 'after')];
const newMisses = [...checksAfter.entries()].filter(([k]) => !checksBefore.has(k)).map(([k, v]) => `${k}: ${v.join(', ')}`);

const builds = Object.fromEntries(tsv('compare-builds.tsv').map((r) => [r.build, r.description]));
const machineFile = path.join(dir, 'compare-machine.txt');
const machine = existsSync(machineFile) ? readFileSync(machineFile, 'utf8').trim().split('\n') : [];
const allRounds = rounds([...tsv('compare-dns.tsv'), ...tsv('compare-provision.tsv'), ...attackRows]);
const leaks = [...tsv('compare-servers.tsv'), ...tsv('compare-attack-leak.tsv')].reduce((s, r) => s + (num(r.leak_packets) || 0), 0);

const md: string[] = ['# nsdns: one build against another', ''];
md.push(`Generated by \`bench/compare.sh\` on ${new Date().toISOString().slice(0, 10)}; kernel ${machine[0] ?? '?'}, ${machine[1] ?? '?'} CPUs, ${(machine[2] ?? '').replace(/^model name\s*:\s*/, '')}.`, '');
md.push(`- before: ${builds.before ?? '?'}`, `- after: ${builds.after ?? '?'}`, '');
md.push(`${allRounds.length} round(s); in each, every stage ran for both builds back to back (odd rounds before first, even rounds after first). Server on CPU 0, clients on CPU 1, as in the full bench.`, '');
md.push('**How to read it.** Each figure is the median over the rounds; the ratio is after / before. For qps higher is better; for times, CPU, losses and memory lower is better. **Noise** is what the rounds of one build disagree by: "noise" is the larger of the two builds\' spreads between rounds (max − min of its per-round figures), against the before median. A figure is *worse (better) beyond noise* only when every after round is worse (better) than every before round (chance alone does that 1 time in 20 each way with 3 rounds, 1 in 6 with 2) and the medians differ by more than the noise and by more than 5 % (for lost queries 10, for memory growth 5 MB); otherwise it is *within noise*. "after worse in" counts the rounds in which after was worse than the before run next to it. A stage shows **no regression** when none of its figures is worse beyond noise and, for the attacks, the after build misses no target that load does not explain (up and answering afterwards, no wrong answer, nothing leaked) that the before build met. One round measures no noise: use 3 or more. For a build compared with itself, chance puts a figure worse beyond noise about 1 time in 50 at 3 rounds (1 in 10 at 2, 1 in 240 at 4), so a run of 30 figures shows one now and then: a real regression shows as several figures worse, none better, and stays on a rerun.', '');
md.push('## Verdicts', '');
for (const stage of ['dns', 'provision', 'attack'] as const) {
  md.push(`- ${STAGE_TITLE[stage]}: ${stageVerdict(judged.filter((j) => j.stage === stage), stage === 'attack' ? newMisses : [], failedRuns.filter((f) => f.stage === stage))}`);
}
md.push('', `DNS or bench-subnet packets seen leaving the machine: ${leaks} (must be 0).`, '');
for (const stage of ['dns', 'provision', 'attack'] as const) {
  const mine = judged.filter((j) => j.stage === stage);
  if (mine.length === 0) continue;
  md.push(`## ${STAGE_TITLE[stage]}`, '', '| figure | before | after | after / before | noise | after worse in | verdict |', '| --- | --- | --- | --- | --- | --- | --- |');
  for (const j of mine) {
    md.push(`| ${j.name} | ${fmt(j.medBefore, j.digits)} | ${fmt(j.medAfter, j.digits)} | ${ratio(j.medAfter, j.medBefore)} | ${noisePct(j)} | ${j.worseRounds}/${j.pairedRounds} | ${j.verdict === 'worse beyond noise' ? `**${j.verdict}**` : j.verdict} |`);
  }
  if (stage === 'attack') {
    md.push('', 'Targets missed that load does not explain (up and answering afterwards, no wrong answers, nothing leaked):', '');
    md.push(`- before: ${[...checksBefore.entries()].map(([k, v]) => `${k}: ${v.join(', ')}`).join('; ') || 'none'}`);
    md.push(`- after: ${[...checksAfter.entries()].map(([k, v]) => `${k}: ${v.join(', ')}`).join('; ') || 'none'}`);
  }
  md.push('');
}
md.push('Per-round figures: `compare.tsv`; the raw rows of every run: `compare-dns.tsv`, `compare-provision.tsv`, `compare-attack.tsv`.', '');
writeFileSync(path.join(dir, 'compare.md'), `${md.join('\n')}\n`);

const head = ['stage', 'figure', 'better', 'before', 'after', 'ratio', 'noise', 'after_worse_rounds', 'verdict', 'before_rounds', 'after_rounds'];
const lines = judged.map((j) => [j.stage, j.name, j.better, fmt(j.medBefore, j.digits), fmt(j.medAfter, j.digits), ratio(j.medAfter, j.medBefore).replace('×', ''),
  fmt(j.noise, j.digits), `${j.worseRounds}/${j.pairedRounds}`, j.verdict, perRound(j.before, j.digits), perRound(j.after, j.digits)].join('\t'));
writeFileSync(path.join(dir, 'compare.tsv'), `${[head.join('\t'), ...lines].join('\n')}\n`);
process.stdout.write(`${md.join('\n')}\n`);
