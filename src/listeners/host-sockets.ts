// A listener on the host: UDP and TCP on the same address and port. With port 0 the kernel picks
// the UDP port and TCP takes the same one.
//
// A host listener's UDP socket is shared by every client that can reach it, and one kernel receive
// queue per socket means one source flooding it gets everyone's datagrams dropped with its own.
// With the native helper (src/native/nsdns-bind.c, --group) the listener is GROUP_SIZE UDP sockets
// on the same address and port (SO_REUSEPORT), and a BPF program in the kernel picks the socket by
// a hash of the client's source address: a flooding source fills only its own socket's queue, and
// libuv reads every ready socket in turn, so the other sources keep being read. Nothing is added
// per query: the kernel steers, the loop reads. Without the helper (no compiler, NSDNS_NATIVE=0)
// or when it fails: one socket.
import { formatHostPort } from '../host-port.js';
import dgram from 'node:dgram';
import net from 'node:net';
import { NsdnsError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { nativeHelperPath, nativeHelperUsable } from '../native/helpers.js';
import type { ListenerSockets } from '../server/dns-server.js';
import { HelperProcess } from './helper-process.js';

const NATIVE_HELPER = nativeHelperPath('nsdns-bind');

/**
 * Sockets per group. A flooder shares its socket with a given other source with chance 1/16 (the
 * hash spreads neighbouring addresses; those two then share one queue, as every client did with one
 * socket). A socket more costs a descriptor and a poll registration, nothing per query: the loop is
 * only woken for sockets that have datagrams, and an idle socket's queue holds no memory.
 */
export const GROUP_SIZE = 16;

/** How long the native helper may take to bind and hand over (it is done at once when all is well). */
const HELPER_TIMEOUT_MS = 10_000;

/** The port a listener's sockets are bound to (the kernel's pick when asked for 0). */
export function portOf(sockets: ListenerSockets): number {
  return sockets.udps[0].address().port;
}

/**
 * Binds `address:port` for UDP and TCP: a steered group of UDP sockets when the native helper is
 * there, else one. A group that cannot be had (an old kernel, the helper failing) is said once in
 * `log` and the listener gets one socket; a taken or missing address fails as before (ERR_LISTEN).
 */
export async function bindHostSockets(address: string, port: number, log?: Logger): Promise<ListenerSockets> {
  let failure: unknown;
  if (nativeHelperUsable(NATIVE_HELPER)) {
    try {
      return await new HelperProcess(NATIVE_HELPER, ['--group', String(GROUP_SIZE), address, String(port)], {
        udps: GROUP_SIZE,
        timeoutMs: HELPER_TIMEOUT_MS,
        waitsForBind: false,
        where: formatHostPort(address, port),
        failure: (reason) => new NsdnsError('ERR_LISTEN', reason.slice(0, 256)),
      }).bind();
    } catch (err) {
      failure = err;
    }
  }
  // An address that is taken or not there fails here too, in Node's words (ERR_LISTEN), and the
  // group's failure said nothing more. Said only when one socket could be had where a group could not.
  const one = await bindOne(address, port);
  if (failure !== undefined) log?.warn({ address, port: portOf(one), reason: errorMessage(failure) }, 'host listener: no socket group steered by client address; serving one UDP socket (a flooding client can crowd out the others)');
  return one;
}

async function bindOne(address: string, port: number): Promise<ListenerSockets> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const udp = dgram.createSocket({ type: net.isIPv6(address) ? 'udp6' : 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, address, () => { udp.off('error', reject); resolve(); });
      });
    } catch (err) {
      udp.close();
      throw new NsdnsError('ERR_LISTEN', `cannot listen on udp ${formatHostPort(address, port)}: ${(err as Error).message}`, { cause: err });
    }
    const udpPort = udp.address().port;
    const tcp = net.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ port: udpPort, host: address, backlog: 511 }, () => { tcp.off('error', reject); resolve(); });
      });
      return { udps: [udp], tcp };
    } catch (err) {
      udp.close();
      // The kernel's free UDP port may be taken for TCP: pick another one.
      if (port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
      throw new NsdnsError('ERR_LISTEN', `cannot listen on tcp ${formatHostPort(address, udpPort)}: ${(err as Error).message}`, { cause: err });
    }
  }
  throw new NsdnsError('ERR_LISTEN', `no free port on ${address} for both udp and tcp`);
}
