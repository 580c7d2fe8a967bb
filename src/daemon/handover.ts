// Restart without losing a query, the way nginx and HAProxy upgrade their binaries: the running
// daemon starts its successor from the files on disk and hands it, over the child-process IPC
// channel, every socket clients send to (every listener of every kind: each namespace's
// 127.0.0.11:53, the host listeners, the gateways; the control socket, the metrics listener). Both processes then hold the same kernel sockets: what
// arrives while the successor starts waits in their buffers, and nothing is ever unbound. Once the
// successor says it serves, the old daemon stops reading, answers what it had read, and exits.
//
//   old                                   successor (NSDNS_HANDOVER=1, stdio 'ipc')
//   spawn ------------------------------> loads its config, enters Daemon.start
//        <------------------------------- hello
//   control socket ---------------------> holds new control connections, unread
//   stop accepting control; answer the requests and connects in flight (state on disk is final)
//   freeze listeners; their sockets, metrics, go -> takes the lock over, restores state,
//                                           adopts the sockets (no bind), serves
//        <------------------------------- ready (after telling systemd its MAINPID)
//   release every socket, exit 0
//
// A successor that exits, or is not ready within HANDOVER_TIMEOUT_MS, is killed; the old daemon
// logs why, takes its control socket and pid file back and goes on as before.
import { spawn, type ChildProcess } from 'node:child_process';
import type dgram from 'node:dgram';
import { readFile, rename, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { NsdnsError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { LOCK_FILE } from './state-lock.js';
import { stopReceiving } from '../server/dns-server.js';

/** How long a successor may take from spawn to ready before the old daemon gives up on it. */
export const HANDOVER_TIMEOUT_MS = 10_000;
/** The environment variable that makes `nsdns serve` wait for its predecessor's sockets. */
export const HANDOVER_ENV = 'NSDNS_HANDOVER';

const pid = z.int().min(1).max(2 ** 31);
/** A listener set's kind ('namespace', 'host', 'gateway') and a listener's key in it (a namespace's path is the longest). */
const listenerSet = z.string().regex(/^[a-z]{1,16}$/);
const listenerKey = z.string().min(1).max(4096);
/** More UDP sockets than any listener's group has: a predecessor never sends more. */
const MAX_UDP_PER_LISTENER = 64;

/**
 * What the old daemon sends (the successor's boundary). A listener goes as its UDP sockets (one, or
 * a whole group, in order), then its TCP server, which completes it.
 */
const toSuccessor = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('control') }),
  z.strictObject({ kind: z.literal('udp'), set: listenerSet, key: listenerKey }),
  z.strictObject({ kind: z.literal('tcp'), set: listenerSet, key: listenerKey }),
  z.strictObject({ kind: z.literal('metrics') }),
  z.strictObject({ kind: z.literal('go'), predecessor: pid, listeners: z.int().min(0) }),
]);

/** What the successor sends (the old daemon's boundary). */
const fromSuccessor = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('hello'), pid }),
  z.strictObject({ kind: z.literal('ready'), pid }),
]);

type ToSuccessor = z.infer<typeof toSuccessor>;

/** A listener's sockets as they travel: its UDP sockets (a group in order) and its TCP server. */
export interface HandedSockets {
  udps: dgram.Socket[];
  tcp: net.Server;
}

/** What a successor was handed. */
export interface Inherited {
  predecessor: number;
  control: { server: net.Server; held: net.Socket[] } | undefined;
  /** By listener set, then by listener key. */
  listeners: Map<string, Map<string, HandedSockets>>;
  metrics: net.Server | undefined;
}

/** Listeners handed over, over all sets. */
export function listenerCount(inherited: Inherited): number {
  let n = 0;
  for (const set of inherited.listeners.values()) n += set.size;
  return n;
}

// ---------------------------------------------------------------------------------------------
// The successor's side.

/**
 * When this process was started as a successor: says hello and collects the sockets until "go".
 * Undefined otherwise. Fails when the predecessor sends anything unexpected or goes quiet.
 */
export function receiveHandover(log: Logger): Promise<Inherited | undefined> {
  const asked = process.env[HANDOVER_ENV] === '1';
  // Not passed on: this daemon's own successors get it from their own spawn.
  delete process.env[HANDOVER_ENV];
  if (!asked || !process.send) return Promise.resolve(undefined);
  const inherited: Inherited = { predecessor: 0, control: undefined, listeners: new Map(), metrics: undefined };
  /** UDP sockets of listeners whose TCP server has not come yet, by set and key. */
  const half = new Map<string, dgram.Socket[]>();
  return new Promise<Inherited>((resolve, reject) => {
    const timer = setTimeout(() => fail(new NsdnsError('ERR_INTERNAL', `handover: the old daemon sent no "go" within ${HANDOVER_TIMEOUT_MS} ms`)), HANDOVER_TIMEOUT_MS);
    const done = () => { clearTimeout(timer); process.off('message', onMessage); process.off('disconnect', onGone); };
    const fail = (err: Error) => { done(); reject(err); };
    const onGone = () => fail(new NsdnsError('ERR_INTERNAL', 'handover: the old daemon went away before handing its sockets over'));
    const onMessage = (raw: unknown, handle: unknown) => {
      const parsed = toSuccessor.safeParse(raw);
      if (!parsed.success) {
        closeHandle(handle);
        return fail(new NsdnsError('ERR_INTERNAL', 'handover: unexpected message from the old daemon'));
      }
      const msg = parsed.data;
      if (msg.kind === 'go') {
        done();
        inherited.predecessor = msg.predecessor;
        for (const udps of half.values()) for (const udp of udps) udp.close();
        if (listenerCount(inherited) !== msg.listeners) {
          log.warn({ expected: msg.listeners, got: listenerCount(inherited) }, 'handover: some sockets did not arrive; those listeners are bound anew');
        }
        resolve(inherited);
        return;
      }
      if (!handle) return fail(new NsdnsError('ERR_INTERNAL', `handover: "${msg.kind}" came without its socket`));
      take(msg, handle);
    };
    const take = (msg: Exclude<ToSuccessor, { kind: 'go' }>, handle: unknown) => {
      switch (msg.kind) {
        case 'control': {
          const server = handle as net.Server;
          const held: net.Socket[] = [];
          // As ControlServer's own: half-closing clients get their answers. What they send before
          // the control server is up waits in the sockets' stream buffers.
          Object.assign(server, { allowHalfOpen: true });
          server.on('connection', (socket) => held.push(socket));
          inherited.control = { server, held };
          return;
        }
        case 'metrics':
          inherited.metrics = handle as net.Server;
          return;
        case 'udp': {
          // Node starts reading a received socket at once, and a datagram with no listener yet is
          // lost: leave them in the kernel buffer until the DnsServer reads (startReceiving).
          const udp = handle as dgram.Socket;
          stopReceiving(udp);
          const name = `${msg.set}\0${msg.key}`;
          const udps = half.get(name) ?? [];
          if (udps.length >= MAX_UDP_PER_LISTENER) return closeHandle(handle);
          udps.push(udp);
          half.set(name, udps);
          return;
        }
        case 'tcp': {
          const name = `${msg.set}\0${msg.key}`;
          const udps = half.get(name);
          half.delete(name);
          if (!udps) return closeHandle(handle);
          const set = inherited.listeners.get(msg.set) ?? new Map<string, HandedSockets>();
          // Sent twice: the first is not ours to keep open either.
          const twice = set.get(msg.key);
          if (twice) for (const s of [...twice.udps, twice.tcp]) s.close();
          set.set(msg.key, { udps, tcp: handle as net.Server });
          inherited.listeners.set(msg.set, set);
        }
      }
    };
    process.on('message', onMessage);
    process.once('disconnect', onGone);
    process.send!({ kind: 'hello', pid: process.pid });
  });
}

/**
 * The pid file names the predecessor (or nobody): make it name this process, in one rename, so
 * StateLock.acquire finds its own pid there and takes the lock. A file naming anyone else is left
 * for acquire to refuse.
 */
export async function takeOverLock(stateDir: string, predecessor: number): Promise<void> {
  const file = path.join(stateDir, LOCK_FILE);
  const holder = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (holder !== '' && holder !== String(predecessor)) return;
  await writePidFile(file, process.pid);
}

/** Tells systemd (when it runs us: NOTIFY_SOCKET) that this process is the service's main one, and ready. */
export async function notifySystemd(log: Logger): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return;
  // Node cannot send a datagram to a unix socket: systemd-notify does. --pid makes the message
  // this process's, not the short-lived helper's (NotifyAccess=all lets either through).
  const child = spawn('systemd-notify', [`--pid=${process.pid}`, `MAINPID=${process.pid}`, 'READY=1'], { stdio: 'ignore' });
  const code = await new Promise<number | string>((resolve) => {
    child.once('error', (err) => resolve(errorMessage(err)));
    child.once('exit', (c, signal) => resolve(c ?? signal ?? 'unknown'));
  });
  if (code !== 0) log.warn({ result: code }, 'systemd-notify failed: systemd may not know this process is the running nsdns');
}

/** After the successor took the sockets and the lock: tell the old daemon, and drop the channel. */
export function announceReady(): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send({ kind: 'ready', pid: process.pid }, undefined, {}, () => {
      // The old daemon exits now; its going must not look like anything to this one.
      if (process.connected) process.disconnect();
      resolve();
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The old daemon's side.

/** What the old daemon hands over, and the hooks it needs around it. */
export interface HandoverParts {
  stateDir: string;
  control: { listening: net.Server | undefined; stopAccepting(): Promise<void>; start(): Promise<void> };
  /** Waits for binds under way and keeps every listener set as it is; every listener's sockets. */
  freezeListeners(): Promise<Array<{ set: string; key: string; udps: readonly dgram.Socket[]; tcp: net.Server }>>;
  metrics: net.Server | undefined;
  /** The successor failed: go on as before (namespaces reconciled, timers restarted). */
  resume(): Promise<void>;
}

export type HandoverResult = { ok: true; successor: number } | { ok: false; reason: string };

/**
 * Starts the successor and hands everything over. ok: the successor serves, and this process
 * must release its copies and exit. Not ok: everything is as before, and `reason` says why.
 */
export async function handOver(parts: HandoverParts, log: Logger): Promise<HandoverResult> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    env: { ...process.env, [HANDOVER_ENV]: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const successor = new Successor(child);
  let controlGiven = false;
  try {
    await successor.next('hello');
    log.info({ successor: child.pid }, 'handover: the new daemon started; handing the control socket over');
    const control = parts.control.listening;
    if (control) {
      await successor.send({ kind: 'control' }, control);
      controlGiven = true;
    }
    // New control requests now go to the successor; the ones here finish first, so the state on
    // disk is final before the successor reads it.
    await successor.race(parts.control.stopAccepting());
    const listeners = await parts.freezeListeners();
    for (const { set, key, udps, tcp } of listeners) {
      // A group goes whole: no client's datagrams wait in a socket nobody reads.
      for (const udp of udps) await successor.send({ kind: 'udp', set, key }, udp);
      await successor.send({ kind: 'tcp', set, key }, tcp);
    }
    if (parts.metrics?.listening) await successor.send({ kind: 'metrics' }, parts.metrics);
    await successor.send({ kind: 'go', predecessor: process.pid, listeners: listeners.length });
    await successor.next('ready');
    successor.dispose();
    return { ok: true, successor: child.pid! };
  } catch (err) {
    const reason = errorMessage(err);
    await successor.kill();
    // Ours again: the pid file (if the successor took it) and the control socket.
    const file = path.join(parts.stateDir, LOCK_FILE);
    const holder = (await readFile(file, 'utf8').catch(() => '')).trim();
    if (holder === '' || holder === String(child.pid)) await writePidFile(file, process.pid).catch((e) => log.error({ err: e }, 'handover: cannot take the pid file back'));
    if (controlGiven) {
      await parts.control.start().catch((e) => log.error({ err: e }, 'handover: cannot take the control socket back; the network commands are unavailable'));
    }
    await parts.resume();
    return { ok: false, reason };
  }
}

/** The successor as the old daemon sees it: its messages, its exit, the deadline. */
class Successor {
  private readonly failed: Promise<never>;
  private readonly timer: NodeJS.Timeout;
  private readonly waiting = new Map<string, () => void>();
  private exited = false;
  private readonly exit: Promise<void>;

  constructor(private readonly child: ChildProcess) {
    let fail!: (err: Error) => void;
    this.failed = new Promise<never>((_, reject) => { fail = reject; });
    this.failed.catch(() => {});
    this.exit = new Promise((resolve) => child.once('exit', () => { this.exited = true; resolve(); }));
    child.once('exit', (code, signal) => fail(new NsdnsError('ERR_INTERNAL', `the new daemon exited (${signal ?? `code ${code}`}) before it was ready; its log lines say why`)));
    child.once('error', (err) => fail(new NsdnsError('ERR_INTERNAL', `the new daemon could not be started: ${err.message}`)));
    this.timer = setTimeout(() => fail(new NsdnsError('ERR_INTERNAL', `the new daemon was not ready within ${HANDOVER_TIMEOUT_MS} ms`)), HANDOVER_TIMEOUT_MS);
    child.on('message', (raw: unknown) => {
      const parsed = fromSuccessor.safeParse(raw);
      if (!parsed.success) return fail(new NsdnsError('ERR_INTERNAL', 'the new daemon sent an unexpected message'));
      this.waiting.get(parsed.data.kind)?.();
    });
  }

  /** Resolves at the successor's next `kind` message; rejects when it fails first. */
  next(kind: 'hello' | 'ready'): Promise<void> {
    return this.race(new Promise<void>((resolve) => this.waiting.set(kind, resolve)));
  }

  /** `work`, unless the successor fails first. */
  race<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.failed]);
  }

  send(msg: ToSuccessor, handle?: net.Server | dgram.Socket): Promise<void> {
    return this.race(new Promise<void>((resolve, reject) => {
      this.child.send(msg, handle as net.Server | undefined, {}, (err) => (err ? reject(err) : resolve()));
    }));
  }

  /** The successor serves: the old daemon keeps no hold on it. */
  dispose(): void {
    clearTimeout(this.timer);
    this.child.removeAllListeners('message');
    if (this.child.connected) this.child.disconnect();
    this.child.unref();
  }

  async kill(): Promise<void> {
    clearTimeout(this.timer);
    if (!this.exited && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exit;
    }
  }
}

/** Writes `pid` to the pid file in one step (a temp file renamed over it). */
async function writePidFile(file: string, value: number): Promise<void> {
  const temp = `${file}.${process.pid}.handover`;
  await writeFile(temp, `${value}\n`, { mode: 0o644 });
  await rename(temp, file);
}

function closeHandle(handle: unknown): void {
  (handle as { close?: () => void } | undefined)?.close?.();
}
