// The "outside" of the egress tests, run inside its own namespace (`ip netns exec NS node
// egress-outside.js ECHO_PORT PORT...`): a TCP server on every PORT that greets each connection
// with "hello" and closes, one on ECHO_PORT that echoes and stays open, and a DNS server on port 53
// (UDP and TCP, the fake upstream) answering `outside.test`. Prints "up" once all listen.
import net from 'node:net';
import { FakeUpstream } from './fake-upstream.js';

const [echoPort, ...ports] = process.argv.slice(2).map(Number);
const listen = (server: net.Server, port: number) => new Promise<void>((resolve, reject) => {
  server.once('error', reject);
  // '::' takes IPv4 too (dual stack).
  server.listen(port, '::', () => resolve());
});
await Promise.all([
  // A client that closes at once resets the connection: nothing to report.
  ...ports.map((port) => listen(net.createServer((s) => { s.on('error', () => {}); s.end('hello\n'); }), port)),
  listen(net.createServer((s) => { s.on('error', () => {}); s.pipe(s); }), echoPort),
  FakeUpstream.start({ address: '0.0.0.0', port: 53, zone: { 'outside.test': ['10.138.99.53'] } }),
]);
console.log('up');
