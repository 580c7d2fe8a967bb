// One timed `netavark setup` for the podman stage: runs the command given after `--` (netavark,
// which starts or signals the DNS server), then asks the server for NAME every millisecond until an
// answer with an address comes. Prints "setup_ms<TAB>answer_ms", both from the command's start:
// this process is already running, so no Node start is in either figure.
//   node podman-probe.js --server ADDR [--port 53] --name NAME [--timeout-ms 10000] -- CMD [ARGS...]
// Polling starts when the command has returned, since netavark 1.4 signals the server before it
// does; queries before the name exists would be forwarded (aardvark-dns) and load the server.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { query, replyHead } from './attack/wire.js';

const { values: opt, positionals: command } = parseArgs({
  allowPositionals: true,
  options: {
    server: { type: 'string' },
    port: { type: 'string', default: '53' },
    name: { type: 'string' },
    'timeout-ms': { type: 'string', default: '10000' },
  },
});
const server = opt.server ?? '';
const port = Number(opt.port);
const timeoutMs = Number(opt['timeout-ms']);
if (!net.isIP(server) || !opt.name || command.length === 0) throw new Error('usage: --server ADDR --name NAME -- CMD [ARGS...]');
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !(timeoutMs > 0 && timeoutMs <= 60_000)) throw new Error('bad --port or --timeout-ms');

/** Runs the command (its stdout, netavark's JSON, is dropped; stderr passed on); resolves with its exit code. */
function run(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

/** Ms from `start` until a query for `name` gets NOERROR with an answer; rejects after the timeout. */
function pollUntilAnswered(name: string, start: number): Promise<number> {
  const socket = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
  let id = 0;
  return new Promise<number>((resolve, reject) => {
    const finish = (result: () => void) => {
      clearInterval(tick);
      clearTimeout(limit);
      socket.close();
      result();
    };
    socket.on('message', (msg) => {
      const head = replyHead(msg);
      if (head && head.rcode === 0 && head.answers > 0) finish(() => resolve(performance.now() - start));
    });
    const send = () => socket.send(query(++id, name), port, server);
    const tick = setInterval(send, 1);
    const limit = setTimeout(() => finish(() => reject(new Error(`${name} not answered at ${server} within ${timeoutMs} ms`))), timeoutMs);
    send();
  });
}

const start = performance.now();
const code = await run(command);
const setupMs = performance.now() - start;
if (code !== 0) {
  process.stderr.write(`podman-probe: ${command[0]} exited ${code}\n`);
  process.exit(1);
}
const answerMs = await pollUntilAnswered(opt.name, start);
process.stdout.write(`${setupMs.toFixed(1)}\t${answerMs.toFixed(1)}\n`);
