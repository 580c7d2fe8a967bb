// Registry files as hostile input: links out of the directory, oversized files, YAML bombs, deep
// nesting, invalid UTF-8 and a file big enough to stall a parser on the event loop. Each is refused
// (or loaded) with a clear line while another network in the same directory keeps answering.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { startDaemon, type LogLine, type RunningDaemon } from '../helpers/daemon.js';
import { dig, digShort } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';
import { steadyClient, type SteadyResult } from '../helpers/steady-client.js';

const GOOD = 'name: good\nendpoints: [{name: ok, ipv4: 10.90.0.1}]\n';

/** What a steady client asking for `name` saw while `during` ran (each query asked up to 3 times). */
async function probe(port: number, name: string, during: () => Promise<unknown>): Promise<SteadyResult> {
  const client = steadyClient(port, name, { everyMs: 5 });
  try {
    await during();
  } finally {
    await client.stop();
  }
  return client.stop();
}

function rssMb(daemon: RunningDaemon): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${daemon.proc.pid}/status`, 'utf8'))?.[1]);
  return Math.round(kb / 1024);
}

const refusalOf = (file: string) => (l: LogLine) => l.level >= 50 && l.file === file;
const errText = (l: LogLine) => String((l.err as { message?: string } | undefined)?.message);

describe('hostile registry files', () => {
  const dir = tempDir();
  const outside = tempDir();
  let daemon: RunningDaemon;

  const stillServing = async () => {
    assert.equal(daemon.exitCode, null, 'daemon alive');
    assert.deepEqual(await digShort(daemon.server, 'ok.good'), ['10.90.0.1'], 'another network keeps answering');
  };

  before(async () => {
    dir.write('good.yaml', GOOD);
    daemon = await startDaemon(['--registry', dir.dir, '--listen', '127.0.0.1:0']);
  });
  after(async () => {
    await daemon?.stop();
    dir.cleanup();
    outside.cleanup();
  });

  it('refuses a symlink to a file outside the directory without reading it', async () => {
    const marker = 'SECRETMARKER_5f3a9c';
    // Shaped like /etc/shadow: YAML reads each line as a key, so a parser echoing keys would leak it.
    const secret = outside.write('shadow', `${marker}:$6$salt$hash:19000:0:99999:7:::\nname: leaked\n`);
    const link = path.join(dir.dir, 'leak.yaml');
    symlinkSync(secret, link);
    const line = await daemon.waitForLog(refusalOf(link));
    assert.match(errText(line), /symbolic link/);
    await stillServing();
    assert.equal((await dig(daemon.server, 'leaked')).status, 'REFUSED', 'the target never became a network');
    assert.ok(!JSON.stringify(daemon.logs).includes(marker), 'the target\'s content never reaches the log');
  });

  it('refuses a file over registryFiles.maxBytes with a clear line; its network keeps its last good content', async () => {
    const file = dir.write('big.yaml', 'name: big\nendpoints: [{name: small, ipv4: 10.91.0.1}]\n');
    await daemon.waitForLog((l) => l.msg === 'registry file loaded' && l.network === 'big');
    dir.write('big.yaml', `name: big\nendpoints: [{name: small, ipv4: 10.91.0.2}]\n#${'x'.repeat(5 * 1024 * 1024)}\n`);
    const line = await daemon.waitForLog(refusalOf(file));
    assert.match(errText(line), /larger than registryFiles\.maxBytes \(4194304 bytes\)/);
    assert.match(line.msg, /network "big" keeps its last good content/);
    assert.deepEqual(await digShort(daemon.server, 'small.big'), ['10.91.0.1']);
    await stillServing();
  });

  it('refuses a YAML alias bomb quickly', async () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (const [p, c] of ['ab', 'bc', 'cd', 'de', 'ef', 'fg', 'gh', 'hi']) lines.push(`${c}: &${c} [${Array(9).fill(`*${p}`).join(',')}]`);
    const file = dir.write('bomb.yaml', `name: bomb\n${lines.join('\n')}\n`);
    // Expanded, it is 9^9 nodes: a parser that tried would not answer within the wait.
    const line = await daemon.waitForLog(refusalOf(file), 30_000);
    assert.match(errText(line), /alias/i);
    await stillServing();
  });

  it('refuses deeply nested YAML and JSON while DNS keeps answering', async (t) => {
    const marker = 'NESTMARKER_77b1';
    const stats = await probe(daemon.port, 'ok.good', async () => {
      const yamlFile = dir.write('deep.yaml', `name: ${marker}\noptions: ${'- '.repeat(1_000_000)}\n`);
      const jsonFile = dir.write('deep.json', `{"name":"deep","options":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`);
      await daemon.waitForLog(refusalOf(yamlFile), 30_000);
      await daemon.waitForLog(refusalOf(jsonFile), 30_000);
    });
    t.diagnostic(`deep nesting, a client of another network: ${JSON.stringify(stats)}`);
    assert.equal(stats.lost, 0, `${stats.lost} of ${stats.sent} queries never answered (each asked up to 3 times)`);
    assert.ok(!JSON.stringify(daemon.logs).includes(marker), 'no file content in the log');
    await stillServing();
  });

  it('refuses invalid UTF-8 with a clear error', async () => {
    const file = dir.write('latin1.yaml', Buffer.concat([Buffer.from('name: latin\n# caf'), Buffer.from([0xe9]), Buffer.from('\nendpoints: [{name: cafe, ipv4: 10.92.0.1}]\n')]));
    const line = await daemon.waitForLog(refusalOf(file));
    assert.match(errText(line), /not valid UTF-8 \(first bad byte on line 2\)/);
    assert.equal((await dig(daemon.server, 'cafe.latin')).status, 'REFUSED');
    await stillServing();
  });
});

describe('a registry file just under the size cap', () => {
  const dir = tempDir();
  let daemon: RunningDaemon;

  before(async () => {
    dir.write('good.yaml', GOOD);
    daemon = await startDaemon(['--registry', dir.dir, '--listen', '127.0.0.1:0']);
  });
  after(async () => {
    await daemon?.stop();
    dir.cleanup();
  });

  it('loads 100 000 endpoints while another network keeps answering', async (t) => {
    const count = 100_000;
    const lines = ['name: huge', 'endpoints:'];
    for (let i = 0; i < count; i++) lines.push(`- {name: e${i}, ipv4: 10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}}`);
    const text = `${lines.join('\n')}\n`;
    assert.ok(text.length < 4 * 1024 * 1024, `${text.length} bytes, under the default cap`);
    const rssBefore = rssMb(daemon);
    const stats = await probe(daemon.port, 'ok.good', async () => {
      dir.write('huge.yaml', text);
      await daemon.waitForLog((l) => l.msg === 'registry file loaded' && l.network === 'huge', 60_000);
    });
    const rssAfter = rssMb(daemon);
    t.diagnostic(`100k endpoints (${text.length} bytes); a client of another network: ${JSON.stringify(stats)}; RSS ${rssBefore} -> ${rssAfter} MB`);
    assert.equal(stats.lost, 0, `${stats.lost} of ${stats.sent} queries never answered (each asked up to 3 times)`);
    assert.deepEqual(await digShort(daemon.server, 'e99999.huge'), ['10.101.134.159']);
    assert.ok(rssAfter - rssBefore < 400, `RSS grew ${rssAfter - rssBefore} MB`);
  });
});
