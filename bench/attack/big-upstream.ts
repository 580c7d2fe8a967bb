// The upstream of the bigcache attack: a DNS server on a loopback address of the bench that
// answers every question over TCP with --records A records (3 500: ~56 KB, near the 64 KB a TCP
// answer can carry) and over UDP with TC only (so the answer is fetched over TCP). It serves only
// the names dnsmasq hands it (bigc.test); nothing leaves the machine. Prints "ready" once bound.
//   node big-upstream.js --address 127.0.0.3 [--port 53] [--records 3500] [--ttl 300]
import dgram from 'node:dgram';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { framed } from './wire.js';

const { values: opt } = parseArgs({
  options: {
    address: { type: 'string' },
    port: { type: 'string', default: '53' },
    records: { type: 'string', default: '3500' },
    ttl: { type: 'string', default: '300' },
  },
});
const address = opt.address ?? '';
if (!address.startsWith('127.')) throw new Error('--address must be a loopback address');
const port = Number(opt.port);
const records = Math.min(4000, Number(opt.records));

/** The answer records, the same for every name (owner: a pointer to the question): made once. */
const answers = Buffer.alloc(records * 16);
for (let i = 0; i < records; i++) {
  const r = answers.subarray(i * 16);
  r.writeUInt16BE(0xc00c, 0); r.writeUInt16BE(1, 2); r.writeUInt16BE(1, 4);
  r.writeUInt32BE(Number(opt.ttl), 6); r.writeUInt16BE(4, 10);
  r[12] = 10; r[13] = 97; r[14] = i >> 8; r[15] = i & 0xff;
}

/** The reply to QUERY (one question, possibly an OPT after it): all records, or TC only. */
function reply(query: Buffer, truncated: boolean): Buffer | undefined {
  if (query.length < 17 || query.readUInt16BE(4) !== 1) return undefined;
  let end = 12;
  while (end < query.length && query[end] !== 0) end += query[end] + 1;
  end += 5;
  if (end > query.length) return undefined;
  const head = Buffer.from(query.subarray(0, end));
  head.writeUInt16BE(0x8180 | (truncated ? 0x0200 : 0) | (query.readUInt16BE(2) & 0x0100), 2);
  head.writeUInt16BE(truncated ? 0 : records, 6);
  head.writeUInt16BE(0, 8); head.writeUInt16BE(0, 10);
  return truncated ? head : Buffer.concat([head, answers]);
}

const udp = dgram.createSocket('udp4');
udp.on('message', (msg, rinfo) => { const r = reply(msg, true); if (r) udp.send(r, rinfo.port, rinfo.address); });
const tcp = net.createServer((sock) => {
  let buf = Buffer.alloc(0);
  sock.on('error', () => undefined);
  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const r = reply(buf.subarray(2, 2 + buf.readUInt16BE(0)), false);
      buf = buf.subarray(2 + buf.readUInt16BE(0));
      if (r) sock.write(framed(r));
    }
  });
});
udp.bind(port, address, () => tcp.listen(port, address, () => console.log('ready')));
