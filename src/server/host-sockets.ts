// Binding a standalone listener on the host: UDP and TCP on the same address and port. With port
// 0 the kernel picks the UDP port and TCP takes the same one.
//
// A host listener's UDP socket is shared by every client that can reach it, and one kernel receive
// queue per socket means one source flooding it gets everyone's datagrams dropped with its own.
// With the native helper (src/native/nsdns-bind.c, --group) the listener is GROUP_SIZE UDP sockets
// on the same address and port (SO_REUSEPORT), and a BPF program in the kernel picks the socket by
// a hash of the client's source address: a flooding source fills only its own socket's queue, and
// libuv reads every ready socket in turn (at most 32 datagrams each per loop turn), so the other
// sources keep being read. Nothing is added per query: the kernel steers, the loop reads.
// Without the helper (no compiler, NSDNS_NATIVE=0) or when it fails: one socket, as before.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { z } from 'zod';
import { NsdnsError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { nativeHelperPath, nativeHelperUsable } from '../native/helpers.js';

const NATIVE_HELPER = nativeHelperPath('nsdns-bind');

export interface BoundSockets {
  /** The listener's UDP socket; with a group, the group's first (its address, the one a handover names). */
  udp: dgram.Socket;
  /** The rest of the group on the same address and port, served and closed with `udp` (none without one). */
  more?: readonly dgram.Socket[];
  tcp: net.Server;
  port: number;
}

/**
 * Sockets per group. A flooder shares its socket with a given other source with chance 1/16 (the
 * hash spreads neighbouring addresses; those two then share one queue, as every client did with one
 * socket). A socket more costs a descriptor and a poll registration, nothing per query: the loop is
 * only woken for sockets that have datagrams, and an idle socket's queue holds no memory.
 */
export const GROUP_SIZE = 16;

/** How long the native helper may take to bind and hand over (it takes a few ms). */
const HELPER_TIMEOUT_MS = 10_000;

/**
 * Binds `address:port` for UDP and TCP: a steered group of UDP sockets when the native helper is
 * there, else one. A group that cannot be had (an old kernel, the helper failing) is said once in
 * `log` and the listener gets one socket; a taken or missing address fails as before (ERR_LISTEN).
 */
export async function bindHostSockets(address: string, port: number, log?: Logger): Promise<BoundSockets> {
  let failure: unknown;
  if (nativeHelperUsable(NATIVE_HELPER)) {
    try {
      return await bindGroup(address, port, GROUP_SIZE);
    } catch (err) {
      failure = err;
    }
  }
  // An address that is taken or not there fails here too, in Node's words (ERR_LISTEN), and the
  // group's failure said nothing more. Said only when one socket could be had where a group could not.
  const one = await bindOne(address, port);
  if (failure !== undefined) log?.warn({ address, port: one.port, reason: errorMessage(failure) }, 'host listener: no socket group steered by client address; serving one UDP socket (a flooding client can crowd out the others)');
  return one;
}

async function bindOne(address: string, port: number): Promise<BoundSockets> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const udp = dgram.createSocket({ type: net.isIPv6(address) ? 'udp6' : 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, address, () => { udp.off('error', reject); resolve(); });
      });
    } catch (err) {
      udp.close();
      throw new NsdnsError('ERR_LISTEN', `cannot listen on udp ${address}:${port}: ${(err as Error).message}`, { cause: err });
    }
    const udpPort = udp.address().port;
    const tcp = net.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ port: udpPort, host: address, backlog: 511 }, () => { tcp.off('error', reject); resolve(); });
      });
      return { udp, more: [], tcp, port: udpPort };
    } catch (err) {
      udp.close();
      // The kernel's free UDP port may be taken for TCP: pick another one.
      if (port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
      throw new NsdnsError('ERR_LISTEN', `cannot listen on tcp ${address}:${udpPort}: ${(err as Error).message}`, { cause: err });
    }
  }
  throw new NsdnsError('ERR_LISTEN', `no free port on ${address} for both udp and tcp`);
}

const groupError = (message: string) => new NsdnsError('ERR_LISTEN', message);

/** What the helper sends: a socket ({kind: udp|tcp}, with its handle) or why it failed. */
const helperMessage = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('udp') }),
  z.object({ kind: z.literal('tcp') }),
  z.object({ kind: z.literal('error'), stage: z.string().max(64), message: z.string().max(256) }),
]);

/** `size` UDP sockets steered by source address and the TCP listener, bound by the native helper. */
function bindGroup(address: string, port: number, size: number): Promise<BoundSockets> {
  const child = spawn(NATIVE_HELPER, ['--group', String(size), address, String(port)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  return new Promise((resolve, reject) => {
    const udps: dgram.Socket[] = [];
    let tcp: net.Server | undefined;
    let stderr = '';
    let settled = false;
    const finish = (err?: NsdnsError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!err && udps.length === size && tcp) {
        resolve({ udp: udps[0], more: udps.slice(1), tcp, port: udps[0].address().port });
        return;
      }
      for (const u of udps) u.close();
      tcp?.close();
      // A handle that still arrives after we gave up must not stay bound.
      child.on('message', (_msg: unknown, late: unknown) => (late as { close?: () => void } | undefined)?.close?.());
      if (child.exitCode === null) child.kill('SIGKILL');
      reject(err ?? groupError(stderr.trim().slice(0, 256) || `the bind helper handed over ${udps.length} of ${size} sockets`));
    };
    const timer = setTimeout(() => finish(groupError(`the bind helper did not finish within ${HELPER_TIMEOUT_MS} ms`)), HELPER_TIMEOUT_MS);
    child.stderr!.on('data', (c: Buffer) => { if (stderr.length < 1024) stderr += c.toString(); });
    child.on('message', (raw: unknown, handle: unknown) => {
      const parsed = helperMessage.safeParse(raw);
      if (settled || !parsed.success) {
        (handle as { close?: () => void } | undefined)?.close?.();
        if (!parsed.success) finish(groupError('unexpected message from the bind helper'));
        return;
      }
      const msg = parsed.data;
      if (msg.kind === 'error') finish(groupError(`${msg.stage} ${address}:${port}: ${msg.message}`));
      else if (msg.kind === 'udp' && handle instanceof dgram.Socket) udps.push(handle);
      else if (msg.kind === 'tcp' && handle instanceof net.Server) tcp = handle;
      else finish(groupError(`the bind helper sent "${msg.kind}" without its socket`));
    });
    child.on('error', (err) => finish(groupError(err.message)));
    // Done once the helper is gone ('close' comes after the last message): until then its copies
    // of the sockets hold the port.
    child.on('close', () => finish());
  });
}
