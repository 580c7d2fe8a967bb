// Runs for a moment inside a network namespace (started as `nsenter --net=PATH node bind-helper.js`):
// waits for the daemon's "bind" message (the daemon may start it early, while it still sets the
// namespace up), brings lo up, binds the resolver's UDP socket and TCP server there, hands both to the daemon
// over the IPC channel, and leaves. The daemon then serves the namespace from its own event loop.
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { namespaceIdentity } from '../namespace-identity.js';

const [address = '127.0.0.11', portText = '53'] = process.argv.slice(2);
const port = Number(portText);

function fail(stage: string, err: Error): never {
  process.send?.({ kind: 'error', stage, message: err.message, code: (err as NodeJS.ErrnoException).code });
  process.exit(1);
}

function bindAndHandOver(): void {
  // lo up first: a bind to 127.0.0.11 in a namespace whose lo was never up answers from 127.0.0.1
  // (see loopback_up in src/native/nsdns-bind.c).
  try {
    execFileSync('ip', ['link', 'set', 'lo', 'up'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  } catch (err) {
    const said = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
    fail('loopback', new Error(`ip link set lo up: ${said.slice(0, 200)}`));
  }
  const udp = dgram.createSocket('udp4');
  udp.once('error', (err) => fail('udp', err));
  udp.bind({ address, port, exclusive: true }, () => {
    const tcp = net.createServer();
    tcp.once('error', (err) => fail('tcp', err));
    tcp.listen({ host: address, port, backlog: 511 }, () => {
      process.send!({ kind: 'udp', netns: namespaceIdentity('/proc/self/ns/net') }, udp as unknown as net.Socket, () => {
        process.send!({ kind: 'tcp' }, tcp, () => {
          // Our copies go; the daemon's stay. Leaving by disconnecting lets the messages drain first.
          udp.close();
          tcp.close();
          process.disconnect();
        });
      });
    });
  });
}

process.on('message', (msg: { kind?: string }) => {
  if (msg.kind === 'bind') bindAndHandOver();
});
// The daemon went away (or gave up on this namespace): nothing to do.
process.on('disconnect', () => process.exit(0));
process.send!({ kind: 'ready' });
