// The control socket against hostile clients: whatever arrives on it (garbage, `null`, huge or
// deeply nested lines, unknown or prototype method names, wrong parameters) gets an error reply or
// a closed connection; the daemon stays up, keeps answering DNS, and its state files do not change.
// Also the socket's permissions, from its first moment: 0600 (0660 with --socket-group).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { MAIN, ROOT, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { digShort } from '../helpers/dig.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

interface Reply { id: number; ok: boolean; result?: unknown; error?: { code: string; message: string } }

/**
 * Writes `data` on a new connection and collects reply lines until `want` arrived or the daemon
 * closed the connection. `half` half-closes after writing, as `printf ... | socat` does.
 */
function exchange(socketPath: string, data: string | Buffer, want = 1, half = false): Promise<{ replies: Reply[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    const replies: Reply[] = [];
    let buffered = '';
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no reply within 10 s (got ${replies.length})`)); }, 10_000);
    const finish = (closed: boolean) => { clearTimeout(timer); socket.destroy(); resolve({ replies, closed }); };
    socket.on('connect', () => (half ? socket.end(data) : socket.write(data)));
    socket.on('data', (chunk) => {
      buffered += chunk.toString();
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        replies.push(JSON.parse(buffered.slice(0, nl)) as Reply);
        buffered = buffered.slice(nl + 1);
      }
      if (replies.length >= want && !half) finish(false);
    });
    // EPIPE/ECONNRESET when the daemon closes on us mid-write: that is an answer too.
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
  });
}

async function ask(socketPath: string, line: string): Promise<Reply> {
  const { replies } = await exchange(socketPath, `${line}\n`);
  assert.equal(replies.length, 1, `one reply to ${line.slice(0, 80)}`);
  return replies[0];
}

function assertRefused(reply: Reply, id: number, message: RegExp): void {
  assert.equal(reply.ok, false, JSON.stringify(reply));
  assert.equal(reply.id, id);
  assert.equal(reply.error?.code, 'ERR_BAD_REQUEST');
  assert.match(reply.error!.message, message);
  assert.ok(reply.error!.message.length < 400, `a short message, got ${reply.error!.message.length} characters`);
}

/** Every file under `dir` with its type, mode and content: what a bad request must not change. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = path.join(d, name);
      const st = lstatSync(full);
      const rel = path.relative(dir, full);
      if (st.isDirectory()) { out[rel] = `dir ${st.mode.toString(8)}`; walk(full); }
      else out[rel] = st.isFile() ? `file ${st.mode.toString(8)} ${readFileSync(full, 'base64')}` : `other ${st.mode.toString(8)}`;
    }
  };
  walk(dir);
  return out;
}

const LAB = 'name: lab\nsubnets:\n  - subnet: 10.77.0.0/24\nendpoints:\n  - name: web\n    ipv4: 10.77.0.10\n';

describe('control socket: hostile requests', () => {
  const registry = tempDir();
  let daemon: RunningDaemon;
  let socketPath: string;
  let before_: Record<string, string>;

  before(async () => {
    registry.write('lab.yaml', LAB);
    daemon = await startDaemon(['--listen', '127.0.0.1:0', '--registry', registry.dir]);
    socketPath = path.join(daemon.stateDir, 'nsdns.sock');
    before_ = snapshot(daemon.stateDir);
  });

  after(async () => {
    await daemon.stop();
    registry.cleanup();
  });

  it('answers lines that are not requests with ERR_BAD_REQUEST', async () => {
    const garbage = Buffer.from(randomBytes(4096).filter((b) => b !== 0x0a));
    assertRefused(await ask(socketPath, garbage.toString('latin1')), 0, /not JSON/);
    assertRefused((await exchange(socketPath, Buffer.concat([garbage, Buffer.from('\n')]))).replies[0], 0, /not JSON/);
    assertRefused(await ask(socketPath, 'null'), 0, /expected object, received null/);
    assertRefused(await ask(socketPath, '[]'), 0, /expected object, received array/);
    assertRefused(await ask(socketPath, '"ping"'), 0, /expected object/);
    assertRefused(await ask(socketPath, '{}'), 0, /id: .*method: /);
    assertRefused(await ask(socketPath, '{"id":1}'), 1, /method: .*expected string/);
    assertRefused(await ask(socketPath, '{"id":"1","method":"ping"}'), 0, /id: /);
    assertRefused(await ask(socketPath, '{"id":2,"method":"ping","extra":true}'), 2, /unknown parameter "extra"/);
    assertRefused(await ask(socketPath, `{"id":3,"method":"${'m'.repeat(5000)}"}`), 3, /method: Too big/);
  });

  it('half-closing clients (printf | socat) get their answer too', async () => {
    const { replies, closed } = await exchange(socketPath, 'null\n{"id":9,"method":"ping"}\n', 2, true);
    assert.equal(closed, true);
    assertRefused(replies[0], 0, /received null/);
    assert.deepEqual(replies[1], { id: 9, ok: true, result: { pid: daemon.proc.pid } });
  });

  it('refuses unknown methods and prototype names', async () => {
    assertRefused(await ask(socketPath, '{"id":4,"method":"network.explode"}'), 4, /^unknown method "network\.explode"$/);
    for (const method of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', '__defineGetter__']) {
      assertRefused(await ask(socketPath, JSON.stringify({ id: 5, method })), 5, new RegExp(`^unknown method "${method}"$`));
    }
  });

  it('checks every method\'s parameters and names the bad one', async () => {
    const cases: Array<[string, string, RegExp]> = [
      ['ping', '{"verbose":1}', /ping: unknown parameter "verbose"/],
      ['network.create', '{"name":5}', /network\.create: name: .*expected string/],
      ['network.create', '{"name":"x","mtu":1.5}', /network\.create: mtu: /],
      ['network.create', '{"name":"x","mtu":1e9}', /network\.create: mtu: Too big/],
      ['network.create', '{"name":"x","subnets":"10.0.0.0/24"}', /network\.create: subnets: .*expected array/],
      ['network.create', `{"name":"x","subnets":${JSON.stringify(Array(65).fill('10.0.0.0/24'))}}`, /network\.create: subnets: Too big/],
      ['network.create', `{"name":"${'n'.repeat(300)}"}`, /network\.create: name: Too big/],
      ['network.create', '{"name":"x","bridge":"br\\ndelete table inet filter"}', /network\.create: bridge: not a valid interface name/],
      ['network.create', '{"name":"x","options":{"__proto__":"1"}}', /network\.create: options: option key "__proto__" is not allowed/],
      ['network.create', '{"name":"x","internal":"yes"}', /network\.create: internal: .*expected boolean/],
      ['network.ls', '{"all":true}', /network\.ls: unknown parameter "all"/],
      ['network.ls', 'null', /network\.ls: .*expected object, received null/],
      ['network.inspect', '{"names":"lab"}', /network\.inspect: names: .*expected array/],
      ['network.inspect', '{"names":[]}', /network\.inspect: names: Too small/],
      ['network.inspect', '{"names":[["lab"]]}', /network\.inspect: names\.0: .*expected string/],
      ['network.rm', '{"names":["lab"],"force":"yes"}', /network\.rm: force: .*expected boolean/],
      ['network.prune', '{"force":true}', /network\.prune: unknown parameter "force"/],
      ['network.connect', '{"network":"lab","target":7}', /network\.connect: target: .*expected string/],
      ['network.connect', `{"network":"lab","target":"ns","ifname":"${'e'.repeat(16)}"}`, /network\.connect: ifname: not a valid interface name/],
      ['network.connect', '{"network":"lab","target":"ns","mac":"01:00:5e:00:00:01"}', /network\.connect: mac: not a unicast MAC/],
      ['network.connect', '{"network":"lab","target":"ns","ip":"10.77.0.300"}', /network\.connect: ip: not an IPv4 address/],
      ['network.connect', '{"network":"lab","target":"ns","aliases":[1]}', /network\.connect: aliases\.0: .*expected string/],
      ['network.disconnect', '{"network":["lab"],"target":"web"}', /network\.disconnect: network: .*expected string/],
      ['network.disconnect', '{"network":"lab"}', /network\.disconnect: target: .*expected string/],
      ['debug.namespace', '{"target":"ns","type":{}}', /debug\.namespace: type: .*expected string/],
      ['debug.namespace', '{"target":"ns","resolve":"a..b"}', /debug\.namespace: resolve: not a DNS name/],
    ];
    const methods = new Set<string>();
    for (const [method, params, message] of cases) {
      methods.add(method);
      assertRefused(await ask(socketPath, `{"id":6,"method":"${method}","params":${params}}`), 6, message);
    }
    assert.equal(methods.size, 9, 'every method is covered');
  });

  it('does not echo large input back', async () => {
    const key = 'k'.repeat(100_000);
    const reply = await ask(socketPath, `{"id":7,"method":"ping","params":{"${key}\\n":1}}`);
    assertRefused(reply, 7, /ping: unknown parameter "k+\.\.\."$/);
    assert.ok(!reply.error!.message.includes('\n'));
  });

  it('escapes names it repeats in errors', async () => {
    const reply = await ask(socketPath, '{"id":12,"method":"network.inspect","params":{"names":["no\\npe"]}}');
    assert.equal(reply.error?.code, 'ERR_NOT_FOUND');
    assert.equal(reply.error?.message, 'network "no\\npe" not found; see `nsdns network ls`');
  });

  it('survives deeply nested JSON', async () => {
    const depth = 130_000; // 260 000 bytes: just under the line cap (256 KiB)
    assertRefused(await ask(socketPath, '['.repeat(depth) + ']'.repeat(depth)), 0, /expected object, received array/);
    const inner = 43_000; // 6 bytes a level: 258 000 bytes
    assertRefused(await ask(socketPath, `{"id":8,"method":"ping","params":${'{"a":'.repeat(inner)}1${'}'.repeat(inner)}}`), 8, /ping: unknown parameter "a"/);
  });

  it('answers a line over 256 KiB with an error and closes the connection', async () => {
    const { replies, closed } = await exchange(socketPath, `${'x'.repeat(2 * 1024 * 1024)}\n`, 2);
    assert.equal(closed, true);
    assert.equal(replies.length, 1);
    assertRefused(replies[0], 0, /request line longer than 262144 bytes/);
  });

  it('reads the largest real request whole (256 static records)', async () => {
    const records = Array.from({ length: 256 }, (_, i) => `host-${i}.${'x'.repeat(250)} A 10.9.${i >> 8}.${i & 255}`);
    const line = JSON.stringify({ id: 21, method: 'network.create', params: { name: 'big', records } });
    assert.ok(line.length > 64 * 1024, `${line.length} bytes`);
    const reply = await ask(socketPath, line);
    assert.equal(reply.id, 21);
    // Read whole and judged on its content (these records are not NAME=VALUE), not by the line cap.
    assert.equal(reply.ok, false);
    assert.match(reply.error?.message ?? '', /--record "host-0\./);
  });

  it('closes a connection whose request line trickles in for over 10 s, and answers others meanwhile', async () => {
    const slow = net.connect(socketPath);
    let received = '';
    slow.on('data', (chunk) => { received += chunk.toString(); });
    let closed = false;
    slow.on('close', () => { closed = true; });
    slow.on('error', () => undefined);
    // A byte a second: never idle, so only the request-line deadline can close it.
    const trickle = setInterval(() => slow.write('{'), 1000);
    try {
      assert.equal((await ask(socketPath, '{"id":22,"method":"ping"}')).ok, true);
      await waitFor(() => closed, { timeoutMs: 30_000, what: 'the daemon closes the trickling connection' });
    } finally {
      clearInterval(trickle);
      slow.destroy();
    }
    assert.match(received, /request line not complete within 10 s/);
  });

  it('answers every request pipelined on one connection', async () => {
    const lines = Array.from({ length: 200 }, (_, i) => JSON.stringify({ id: i + 1, method: i % 2 ? 'ping' : 'nope' })).join('\n');
    const { replies } = await exchange(socketPath, `${lines}\n`, 200);
    assert.deepEqual(replies.map((r) => r.id).sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i + 1));
    for (const r of replies) assert.equal(r.ok, r.id % 2 === 0);
  });

  it('holds at most 256 connections; the rest are closed, and a slot frees when one goes', async () => {
    const sockets = Array.from({ length: 300 }, () => net.connect(socketPath).on('error', () => undefined));
    try {
      await Promise.all(sockets.map((s) => new Promise((resolve) => s.on('connect', resolve).on('close', resolve))));
      // Each socket is connected or closed; the daemon may still be closing the ones over its cap.
      await waitFor(() => sockets.filter((s) => s.destroyed).length >= 44, { what: 'the connections over 256 closed' });
      assert.equal(sockets.filter((s) => s.destroyed).length, 44);
    } finally {
      sockets.forEach((s) => s.destroy());
    }
    // A slot is free once the daemon has seen the others go.
    assert.equal((await waitFor(() => ask(socketPath, '{"id":11,"method":"ping"}'), { what: 'a ping answered once the connections are gone' })).ok, true);
  });

  it('stays up: ping and DNS answer, state files unchanged, nothing raw in the log', async () => {
    assert.equal(daemon.exitCode, null);
    assert.deepEqual(await ask(socketPath, '{"id":10,"method":"ping"}'), { id: 10, ok: true, result: { pid: daemon.proc.pid } });
    assert.deepEqual(await digShort(daemon.server, 'web.lab'), ['10.77.0.10']);
    assert.deepEqual(snapshot(daemon.stateDir), before_);
    assert.deepEqual(daemon.logs.filter((l) => l.level >= 50), []);
    for (const l of daemon.logs) assert.ok(JSON.stringify(l).length < 2000, `a short log line: ${JSON.stringify(l).slice(0, 200)}`);
  });
});

describe('control socket: shutdown', () => {
  it('an idle client does not keep the daemon from exiting, and the socket file goes', async () => {
    const daemon = await startDaemon([]);
    const socketPath = path.join(daemon.stateDir, 'nsdns.sock');
    const idle = net.connect(socketPath);
    const closed = new Promise((resolve) => idle.on('close', resolve));
    idle.on('error', () => undefined);
    try {
      // One answered ping first: the daemon's event loop has run, so its signal handlers are set.
      idle.write('{"id":1,"method":"ping"}\n');
      await new Promise((resolve) => idle.once('data', resolve));
      daemon.signal('SIGTERM');
      // Held by the idle client, it would never exit: the wait only bounds that.
      assert.equal(await daemon.waitForExit(15_000), 0, `exit status; logs:\n${daemon.logs.map((l) => JSON.stringify(l)).join('\n')}`);
      await closed;
      assert.throws(() => lstatSync(socketPath), /ENOENT/);
    } finally {
      idle.destroy();
      await daemon.stop();
    }
  });
});

const modeOf = (p: string) => statSync(p).mode & 0o777;
const groupId = (name: string) => Number(readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`))!.split(':')[2]);

describe('control socket: permissions', () => {
  it('is 0600 in the state directory the test made (0700, left as it is)', async () => {
    const daemon = await startDaemon([]);
    try {
      assert.equal(modeOf(path.join(daemon.stateDir, 'nsdns.sock')), 0o600);
      assert.equal(modeOf(daemon.stateDir) & 0o007, 0, 'not world-accessible');
    } finally {
      await daemon.stop();
    }
  });

  it('creates its own directory 0700', async () => {
    const state = mkdtempSync(path.join(tmpdir(), 'nsdns-test-'));
    const socket = path.join(state, 'run', 'nsdns', 'nsdns.sock');
    const daemon = await startDaemon(['--state-dir', state, '--socket', socket]);
    try {
      assert.equal(modeOf(path.dirname(socket)), 0o700);
      assert.equal(modeOf(socket), 0o600);
      assert.equal((await ask(socket, '{"id":1,"method":"ping"}')).ok, true);
    } finally {
      await daemon.stop();
      rmSync(state, { recursive: true, force: true });
    }
  });

  it('--socket-group: socket 0660 and directory 0750, both of that group', async () => {
    const state = mkdtempSync(path.join(tmpdir(), 'nsdns-test-'));
    const socket = path.join(state, 'run', 'nsdns.sock');
    const daemon = await startDaemon(['--state-dir', state, '--socket', socket, '--socket-group', 'daemon']);
    try {
      const gid = groupId('daemon');
      assert.equal(modeOf(socket), 0o660);
      assert.equal(statSync(socket).gid, gid);
      assert.equal(statSync(socket).uid, 0);
      assert.equal(modeOf(path.dirname(socket)), 0o750);
      assert.equal(statSync(path.dirname(socket)).gid, gid);
      assert.equal((await ask(socket, '{"id":1,"method":"ping"}')).ok, true);
    } finally {
      await daemon.stop();
      rmSync(state, { recursive: true, force: true });
    }
  });

  it('--socket-group does not loosen a directory it did not create, and says so', async () => {
    const daemon = await startDaemon(['--socket-group', 'nogroup']);
    try {
      assert.equal(modeOf(daemon.stateDir), 0o700);
      assert.equal(modeOf(path.join(daemon.stateDir, 'nsdns.sock')), 0o660);
      await daemon.waitForLog((l) => /group nogroup cannot enter/.test(l.msg));
    } finally {
      await daemon.stop();
    }
  });

  it('refuses an unknown group, and a path that is not a socket, at start', async () => {
    const state = tempDir();
    try {
      const serve = (...extra: string[]) => execa(process.execPath, [MAIN, 'serve', '--state-dir', state.dir, '--no-resolv-conf', '--listen', '127.0.0.1:0',
        '--nft-table', `nsdns_test_${path.basename(state.dir).replace(/\W/g, '_')}`, '--link-prefix', 'nt', ...extra], { reject: false, cwd: ROOT, timeout: 20_000 });
      const unknown = await serve('--socket', path.join(state.dir, 'run', 'nsdns.sock'), '--socket-group', 'nsdnsnosuchgroup');
      assert.equal(unknown.exitCode, 1);
      assert.match(unknown.stderr, /--socket-group "nsdnsnosuchgroup": no such group in \/etc\/group/);
      const file = path.join(state.dir, 'precious');
      writeFileSync(file, 'keep me');
      const notSocket = await serve('--socket', file);
      assert.equal(notSocket.exitCode, 1);
      assert.match(notSocket.stderr, /precious exists and is not a socket/);
      assert.equal(readFileSync(file, 'utf8'), 'keep me');
    } finally {
      state.cleanup();
    }
  });
});

describe('the CLI side', () => {
  const nsdns = (...args: string[]) => execa(process.execPath, [MAIN, ...args], { reject: false, cwd: ROOT, timeout: 20_000 });

  it('lists networks through the socket', async () => {
    const registry = tempDir();
    registry.write('lab.yaml', LAB);
    const daemon = await startDaemon(['--registry', registry.dir]);
    try {
      const r = await nsdns('network', 'ls', '--quiet', '--socket', path.join(daemon.stateDir, 'nsdns.sock'));
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(r.stdout, 'lab');
    } finally {
      await daemon.stop();
      registry.cleanup();
    }
  });

  it('says so, and exits 1, when the socket answers something that is not a response', async () => {
    const dir = tempDir();
    const socket = path.join(dir.dir, 'fake.sock');
    const server = net.createServer((c) => c.on('data', () => c.end('garbage\n')));
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    try {
      const r = await nsdns('network', 'ls', '--socket', socket);
      assert.equal(r.exitCode, 1);
      assert.equal(r.stderr, `nsdns: the daemon's answer to network.ls is not a control response (is ${socket} an nsdns socket?)`);
    } finally {
      server.close();
      dir.cleanup();
    }
  });
});
