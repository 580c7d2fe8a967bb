// The registry parser thread (src/daemon/registry-loader.ts, RegistryParser): a failure of the
// parser is never held against a file's content, a refusal of the content is remembered, a parse
// over its heap limit ends the parser and not the daemon, it runs at idle priority, and it leaves
// no thread behind.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { RegistryParser, parserLimitsFor } from '../../src/daemon/registry-loader.js';

/** A valid network file of `n` endpoints (JSON). */
function file(n: number): Uint8Array {
  const endpoints = Array.from({ length: n }, (_, i) => ({ name: `e${i}`, ipv4: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }));
  return new Uint8Array(Buffer.from(JSON.stringify({ name: 'big', endpoints })));
}

const bytesOf = (text: string) => new Uint8Array(Buffer.from(text));

/** The same network as YAML: parsed whole (a YAML document is built before it is read). */
function yamlFile(n: number): Uint8Array {
  const lines = ['name: big', 'endpoints:'];
  for (let i = 0; i < n; i++) lines.push(`  - name: e${i}`, `    ipv4: 10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  return bytesOf(`${lines.join('\n')}\n`);
}

/** This process's threads (task ids). */
const tasks = () => readdirSync('/proc/self/task').map(Number);

/** A thread's nice value and scheduling policy (/proc/<pid>/task/<tid>/stat fields 19 and 41). */
function schedOf(tid: number): { nice: number; policy: number } | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // Fields after the command name (in parentheses, which may hold spaces): field 3 is index 0.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { nice: Number(fields[19 - 3]), policy: Number(fields[41 - 3]) };
  } catch {
    return undefined; // the thread ended
  }
}

const SCHED_IDLE = 5;

describe('registry parser thread', () => {
  it('stopped during a job answers at once, unjudged, and parses the same content afterwards', async () => {
    const parser = new RegistryParser(parserLimitsFor(4 << 20));
    const job = parser.parse('big.json', file(60_000), undefined, () => {});
    // 60 000 endpoints take ~600 ms here, the worker's start included: 100 ms is well within the job.
    setTimeout(() => void parser.stop(), 100);
    const outcome = await job;
    // Refused without a hash: the stop ended it (a job left to finish would have parsed).
    assert.equal(outcome.kind, 'refused');
    assert.equal(outcome.kind === 'refused' ? outcome.hash : 'x', undefined, 'a stop says nothing about the content');
    let tables = 0;
    const again = await parser.parse('big.json', file(60_000), undefined, () => { tables++; });
    assert.equal(again.kind, 'parsed');
    assert.equal(tables, 1);
    await parser.stop();
  });

  it('remembers a refused content: the same bytes again answer unchanged, fixed ones parse', async () => {
    const parser = new RegistryParser(parserLimitsFor(4 << 20));
    try {
      const bad = '{"name": "net", "endpoints": [{"name": "a", "ipv4": "not an address"}]}';
      const first = await parser.parse('net.json', bytesOf(bad), undefined, () => assert.fail('a refused file is not consumed'));
      assert.equal(first.kind, 'refused');
      assert.ok(first.kind === 'refused' && first.hash !== undefined, 'the refusal is about the content: its hash is known');
      assert.match(first.kind === 'refused' ? first.problem : '', /ipv4/);
      assert.doesNotMatch(first.kind === 'refused' ? first.problem : '', /\n/, 'one line');
      const previous = first.kind === 'refused' ? first.hash : undefined;
      assert.equal((await parser.parse('net.json', bytesOf(bad), previous, () => assert.fail('not parsed again'))).kind, 'unchanged');
      let consumed = 0;
      const fixed = await parser.parse('net.json', bytesOf(bad.replace('not an address', '10.0.0.1')), previous, (network, tables, notable) => {
        consumed++;
        assert.equal(network.name, 'net');
        assert.ok(tables.endpointStarts instanceof Uint32Array && tables.names.slots instanceof Int32Array);
        assert.ok(Array.isArray(notable));
      });
      assert.equal(fixed.kind, 'parsed');
      assert.equal(consumed, 1);
      assert.equal(fixed.kind === 'parsed' ? fixed.total : 0, 1);
      // An empty file (a buffer of no bytes: nothing to move) is judged like any content.
      const empty = await parser.parse('net.json', new Uint8Array(0), undefined, () => assert.fail('not consumed'));
      assert.ok(empty.kind === 'refused' && empty.hash !== undefined, JSON.stringify(empty));
    } finally {
      await parser.stop();
    }
  });

  it('refuses a file whose parse needs more than its heap limit, naming it; the process lives and the next file parses', async () => {
    const parser = new RegistryParser({ timeoutMs: 60_000, maxHeapMb: 16 });
    try {
      const outcome = await parser.parse('huge.yaml', yamlFile(200_000), undefined, () => assert.fail('not consumed'));
      assert.equal(outcome.kind, 'refused');
      assert.match(outcome.kind === 'refused' ? outcome.problem : '', /needs more than 16 MB; parser stopped/);
      assert.ok(outcome.kind === 'refused' && outcome.hash !== undefined, 'too big is about the content: remembered');
      const small = await parser.parse('small.json', file(3), undefined, () => {});
      assert.equal(small.kind, 'parsed');
    } finally {
      await parser.stop();
    }
  });

  it('parses on a thread of its own at idle priority (SCHED_IDLE, else nice 19), the main thread untouched, and leaves no thread after stop()', async () => {
    const before = new Set(tasks());
    const parser = new RegistryParser(parserLimitsFor(4 << 20));
    let seen: { tid: number; nice: number; policy: number } | undefined;
    let polled = 0;
    const poll = setInterval(() => {
      polled++;
      for (const tid of tasks()) {
        if (before.has(tid)) continue;
        const s = schedOf(tid);
        if (s && (s.policy === SCHED_IDLE || s.nice === 19)) seen ??= { tid, ...s };
      }
    }, 20);
    try {
      const outcome = await parser.parse('big.json', file(60_000), undefined, () => {});
      assert.equal(outcome.kind, 'parsed');
    } finally {
      clearInterval(poll);
    }
    assert.ok(polled > 0, 'the parse was long enough to look at its threads');
    assert.ok(seen, `no new thread at idle priority among ${tasks().filter((t) => !before.has(t)).map((t) => `${t}:${JSON.stringify(schedOf(t))}`).join(' ')}`);
    if (process.platform === 'linux') {
      // Where chrt can set it, the policy is SCHED_IDLE (ps: IDL).
      const cls = execFileSync('ps', ['-L', '-o', 'tid=,cls=', '-p', String(process.pid)], { encoding: 'utf8' });
      const classes = new Map(cls.trim().split('\n').map((l) => l.trim().split(/\s+/) as [string, string]));
      if (seen.policy === SCHED_IDLE) assert.equal(classes.get(String(seen.tid)), 'IDL');
      assert.equal(classes.get(String(process.pid)), 'TS', 'the main thread (answers DNS) keeps normal priority');
    }
    assert.equal(schedOf(process.pid)?.nice, 0, 'the main thread keeps nice 0');
    assert.ok(tasks().includes(seen.tid), 'the parser thread lives between jobs');
    await parser.stop();
    assert.ok(!tasks().includes(seen.tid), 'stop() ends the parser thread');
    assert.equal((await parser.parse('small.json', file(3), undefined, () => {})).kind, 'parsed', 'and the next job starts a new one');
    await parser.stop();
  });

  it('starved of CPU by a busy host, waits instead of refusing the file: its time limit is CPU time, not wall time', async () => {
    // A limit of 2 s: the starvation below outlasts it, and the wall-time backstop (10 × the limit)
    // leaves 20 s for the parse once the busy process is gone, even on a host loaded by others.
    const parser = new RegistryParser({ timeoutMs: 2000, maxHeapMb: 256 });
    const before = new Set(tasks());
    assert.equal((await parser.parse('first.json', file(3), undefined, () => {})).kind, 'parsed');
    const tid = tasks().find((t) => !before.has(t) && (schedOf(t)?.policy === SCHED_IDLE || schedOf(t)?.nice === 19));
    assert.ok(tid, 'the parser thread');
    // The parser thread and a busy process share one CPU: at idle priority the parser gets
    // (almost) none of it while the busy one runs, as on a saturated host.
    execFileSync('taskset', ['-p', '-c', '0', String(tid)], { stdio: 'ignore' });
    const busy = spawn('taskset', ['-c', '0', 'yes'], { stdio: 'ignore' });
    let outcome: Awaited<ReturnType<RegistryParser['parse']>> | undefined;
    try {
      const job = parser.parse('big.json', file(40_000), undefined, () => {}).then((o) => { outcome = o; return o; });
      // Starved for longer than its limit (the wait is the point of the test, not a guess).
      await sleep(2500);
      assert.equal(outcome, undefined, `a starved parser answered: ${JSON.stringify(outcome)}`);
      busy.kill();
      const done = await job;
      assert.equal(done.kind, 'parsed', JSON.stringify(done));
    } finally {
      busy.kill();
      await parser.stop();
    }
  });

  it('once closed (the daemon stopping), ends queued jobs unjudged without starting a parser', async () => {
    const parser = new RegistryParser(parserLimitsFor(4 << 20));
    const running = parser.parse('big.json', file(60_000), undefined, () => {});
    const queued = parser.parse('small.json', file(3), undefined, () => { throw new Error('installed during shutdown'); });
    await parser.close();
    assert.equal((await running).kind, 'refused');
    const outcome = await queued;
    assert.deepEqual(outcome, { kind: 'refused', hash: undefined, problem: 'the daemon is stopping' });
  });
});
