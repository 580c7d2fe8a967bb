// The control socket (a unix socket for root, and for --socket-group's members): `nsdns network ...`
// and `nsdns debug` talk to the daemon through it. Every line is checked at this boundary (size,
// JSON, envelope, method, then the method's own schema); a bad one gets an error reply, never
// takes the daemon down, and never reaches a handler.
import { linkSync, renameSync, rmSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { NsdnsError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { ControlResponse } from './control-protocol.js';
import { MAX_LINE_BYTES, describeIssues, quote, requestSchema } from './control-schemas.js';

export type Handler = (params: unknown) => Promise<unknown>;

export interface ControlOptions {
  /** A group whose members may use the socket too; root only when absent. */
  group?: string;
  /** How long a started request line may take to complete (default LINE_TIMEOUT_MS). */
  lineTimeoutMs?: number;
}

/** Requests one connection may have in flight; beyond that it is not read until one finishes. */
const MAX_IN_FLIGHT = 16;
/** Well above a script's burst of parallel `network connect`s (bench/ runs such bursts), well below the fd limit. */
const MAX_CONNECTIONS = 256;
/** A connection with nothing in flight and nothing sent for this long is closed (it holds a slot). */
const IDLE_TIMEOUT_MS = 60_000;
/** A request line must be complete this long after its first byte: a trickle must not hold a slot. */
const LINE_TIMEOUT_MS = 10_000;

export class ControlServer {
  private server: net.Server | undefined;
  // A Map, not the object: a method named "constructor" or "__proto__" must find nothing.
  private readonly handlers: Map<string, Handler>;
  /** Per open connection: stop it once its requests in flight are answered. */
  private readonly drains = new Set<() => void>();

  constructor(private readonly socketPath: string, handlers: Record<string, Handler>, private readonly log: Logger, readonly options: ControlOptions = {}) {
    this.handlers = new Map(Object.entries(handlers));
  }

  /**
   * Fails when a daemon already answers on the socket. Called before the state is restored, so a
   * second daemon stops before it touches anything; start() checks again (one may have come since).
   */
  async checkFree(): Promise<void> {
    if (await isAlive(this.socketPath)) throw new NsdnsError('ERR_LISTEN', `another nsdns daemon is already listening on ${this.socketPath}; stop it first, or give this one its own --socket`);
  }

  async start(): Promise<void> {
    const gid = this.options.group === undefined ? undefined : await groupId(this.options.group);
    await this.prepareDirectory(path.dirname(this.socketPath), gid);
    await this.checkFree();
    await removeStaleSocket(this.socketPath);
    const server = net.createServer({ allowHalfOpen: true }, (socket) => this.serve(socket));
    server.maxConnections = MAX_CONNECTIONS;
    await listenPrivately(server, this.socketPath);
    this.server = server;
    if (gid !== undefined) {
      // 0600 until the group owns it, then 0660; a socket that cannot be given to the group goes.
      try {
        await chown(this.socketPath, process.getuid!(), gid);
        await chmod(this.socketPath, 0o660);
      } catch (err) {
        await this.close();
        throw err;
      }
    }
    this.log.info({ socket: this.socketPath, ...(gid !== undefined && { group: this.options.group }) }, 'control socket ready');
  }

  /**
   * A directory nsdns creates gets 0700 (0750 and the group with --socket-group). One that exists
   * is someone's choice (a test's temp dir, an admin's): it is left as it is.
   */
  private async prepareDirectory(dir: string, gid: number | undefined): Promise<void> {
    await mkdir(path.dirname(dir), { recursive: true, mode: 0o755 });
    const mode = gid === undefined ? 0o700 : 0o750;
    try {
      await mkdir(dir, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const st = await stat(dir);
      if (!st.isDirectory()) throw new NsdnsError('ERR_CONFIG', `the control socket's directory ${dir} is not a directory`);
      const groupCanEnter = (st.mode & 0o001) !== 0 || (st.gid === gid && (st.mode & 0o010) !== 0);
      if (gid !== undefined && !groupCanEnter) this.log.warn({ dir, mode: (st.mode & 0o777).toString(8) }, `group ${this.options.group} cannot enter ${dir}, so only root can use the control socket`);
      return;
    }
    // mkdir's mode was reduced by the umask: set it exactly.
    if (gid !== undefined) await chown(dir, process.getuid!(), gid);
    await chmod(dir, mode);
  }

  private serve(socket: net.Socket): void {
    const lines = new LineBuffer(MAX_LINE_BYTES);
    let queue: string[] = [];
    let next = 0;
    let inFlight = 0;
    let closing = false;
    let clientDone = false;
    let draining = false;
    // A started line must be complete lineTimeoutMs after its first byte, counted only while we
    // read: when backpressure pauses the socket, the client cannot finish it.
    let lineTimer: NodeJS.Timeout | undefined;
    const lineTimeoutMs = this.options.lineTimeoutMs ?? LINE_TIMEOUT_MS;
    const lineDeadline = (): void => refuse(`request line not complete within ${lineTimeoutMs / 1000} s; closing the connection`);
    const watchLine = (reading: boolean): void => {
      if (reading && lines.pending) lineTimer ??= setTimeout(lineDeadline, lineTimeoutMs);
      else {
        clearTimeout(lineTimer);
        lineTimer = undefined;
      }
    };
    const send = (response: ControlResponse): void => {
      // The client may be gone: writing then would only raise an error nobody waits for.
      if (!socket.destroyed && socket.writable) socket.write(serialize(response));
    };
    const pump = (): void => {
      while (inFlight < MAX_IN_FLIGHT && next < queue.length) {
        inFlight++;
        this.answer(queue[next++])
          .then(send, (err) => this.log.error({ err }, 'control request failed'))
          .finally(() => { inFlight--; pump(); });
      }
      if (next === queue.length) { queue = []; next = 0; }
      // A client that half-closed (`socat`, `nc -N`) still gets every answer, then the end.
      if (clientDone && inFlight === 0 && queue.length === 0) socket.end();
      // Shutting down: an idle client must not hold the daemon open.
      else if (draining && inFlight === 0) socket.end(() => socket.destroy());
      // Backpressure: a client that pipelines more than its share waits, and nothing queues up.
      else if (next < queue.length || closing || draining) {
        socket.pause();
        watchLine(false);
      } else {
        socket.resume();
        watchLine(true);
      }
    };
    const drain = (): void => { draining = true; queue = []; next = 0; pump(); };
    this.drains.add(drain);
    socket.on('close', () => this.drains.delete(drain));
    socket.on('error', () => socket.destroy());
    socket.on('end', () => { clientDone = true; pump(); });
    socket.setTimeout(IDLE_TIMEOUT_MS, () => { if (inFlight === 0) socket.destroy(); });
    // Answer, then close: the rest of that line is not worth reading.
    const refuse = (message: string): void => {
      closing = true;
      clearTimeout(lineTimer);
      socket.pause();
      if (socket.writable) socket.end(serialize(badRequest(0, message)), () => socket.destroy());
      else socket.destroy();
    };
    socket.on('close', () => clearTimeout(lineTimer));
    socket.on('data', (chunk: Buffer) => {
      if (closing) return;
      const complete = lines.push(chunk);
      if (complete === undefined) return refuse(`request line longer than ${MAX_LINE_BYTES} bytes; closing the connection`);
      // The deadline restarts with each line completed (pump() arms it for the next one).
      if (complete.length > 0) watchLine(false);
      for (const line of complete) if (line.trim() !== '') queue.push(line);
      pump();
    });
  }

  private async answer(line: string): Promise<ControlResponse> {
    let data: unknown;
    try {
      data = JSON.parse(line);
    } catch {
      return badRequest(0, 'the request is not JSON');
    }
    const envelope = requestSchema.safeParse(data);
    if (!envelope.success) return badRequest(idOf(data), `bad request: ${describeIssues(envelope.error.issues)}`);
    const { id, method, params } = envelope.data;
    const handler = this.handlers.get(method);
    if (!handler) return badRequest(id, `unknown method ${quote(method)}`);
    try {
      // Absent params mean none; an explicit null is the client's mistake, for the schema to refuse.
      return { id, ok: true, result: await handler(params === undefined ? {} : params) };
    } catch (err) {
      const code = err instanceof NsdnsError ? err.code : 'ERR_INTERNAL';
      if (code === 'ERR_INTERNAL') this.log.error({ err, method }, 'control request failed');
      else this.log.info({ method, code, reason: errorMessage(err) }, 'control request refused');
      return { id, ok: false, error: { code, message: errorMessage(err) } };
    }
  }

  /** The listening socket, for a successor to take over (see handover.ts). */
  get listening(): net.Server | undefined {
    return this.server;
  }

  /**
   * Handover, once the successor holds the listening socket: stop accepting here and keep the
   * socket file (the successor answers on it now), answer the requests in flight, and resolve when
   * every connection this process accepted is closed. start() takes the socket back if need be.
   */
  async stopAccepting(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = keepingPath(this.socketPath, () => new Promise<void>((resolve) => server.close(() => resolve())));
    for (const drain of this.drains) drain();
    await closed;
  }

  /**
   * Serves on a listening socket handed over by the daemon before this one, with the connections
   * it accepted while this daemon was starting (not read yet: they get every answer).
   */
  adopt(server: net.Server, held: readonly net.Socket[]): void {
    server.maxConnections = MAX_CONNECTIONS;
    server.removeAllListeners('connection');
    server.on('connection', (socket) => this.serve(socket));
    this.server = server;
    for (const socket of held) this.serve(socket);
    this.log.info({ socket: this.socketPath }, 'control socket taken over');
  }

  async close(): Promise<void> {
    if (!this.server) return;
    const closed = new Promise<void>((resolve) => this.server!.close(() => resolve()));
    for (const drain of this.drains) drain();
    await closed;
    await rm(this.socketPath, { force: true });
  }
}

/** Splits a byte stream into lines, holding at most `max` bytes of an unfinished one. */
class LineBuffer {
  private parts: Buffer[] = [];
  private size = 0;

  constructor(private readonly max: number) {}

  /** Whether part of a line is waiting for its newline. */
  get pending(): boolean {
    return this.size > 0;
  }

  /** The lines `chunk` completes, or undefined once a line is longer than the cap. */
  push(chunk: Buffer): string[] | undefined {
    const lines: string[] = [];
    let start = 0;
    for (let newline = chunk.indexOf(10); newline >= 0; newline = chunk.indexOf(10, start)) {
      if (this.size + newline - start > this.max) return undefined;
      this.parts.push(chunk.subarray(start, newline));
      lines.push(Buffer.concat(this.parts).toString('utf8'));
      this.parts = [];
      this.size = 0;
      start = newline + 1;
    }
    if (start < chunk.length) {
      this.size += chunk.length - start;
      if (this.size > this.max) return undefined;
      this.parts.push(chunk.subarray(start));
    }
    return lines;
  }
}

function badRequest(id: number, message: string): ControlResponse {
  return { id, ok: false, error: { code: 'ERR_BAD_REQUEST', message } };
}

/** The request's id when it has a usable one, so the client can match the error; else 0. */
function idOf(data: unknown): number {
  const id = typeof data === 'object' && data !== null && !Array.isArray(data) ? (data as { id?: unknown }).id : undefined;
  return Number.isSafeInteger(id) && (id as number) >= 0 ? (id as number) : 0;
}

function serialize(response: ControlResponse): string {
  try {
    return `${JSON.stringify(response)}\n`;
  } catch {
    // A result JSON cannot encode (a cycle, a BigInt) is a bug here, not the client's: say so.
    return `${JSON.stringify({ id: response.id, ok: false, error: { code: 'ERR_INTERNAL', message: 'the result could not be encoded' } })}\n`;
  }
}

/**
 * bind() creates the socket file with 0777 & ~umask, synchronously inside listen(): a umask for
 * that one call makes it 0600 from its first moment, and no other code runs while it is set.
 */
function listenPrivately(server: net.Server, socketPath: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const previous = process.umask(0o177);
    try {
      server.listen(socketPath, () => { server.off('error', reject); resolve(); });
    } finally {
      process.umask(previous);
    }
  });
}

/**
 * Runs `close` (which closes a listening unix socket) without losing the socket's path: libuv
 * unlinks the path of a socket it bound when that socket closes, even though the successor still
 * listens on it. A second name taken before and renamed back after, in the same tick, keeps it.
 */
function keepingPath<T>(socketPath: string, close: () => T): T {
  const spare = `${socketPath}.${process.pid}.handover`;
  let linked = false;
  try {
    linkSync(socketPath, spare);
    linked = true;
  } catch {
    // No path to keep (it was removed by hand): closing changes nothing.
  }
  try {
    return close();
  } finally {
    if (linked) {
      try {
        renameSync(spare, socketPath);
      } catch {
        rmSync(spare, { force: true });
      }
    }
  }
}

/** A socket left by a daemon that died goes; anything else at that path is not ours to delete. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  const st = await lstat(socketPath).catch(() => undefined);
  if (st && !st.isSocket()) throw new NsdnsError('ERR_CONFIG', `${socketPath} exists and is not a socket; not replacing it`);
  await rm(socketPath, { force: true });
}

/** The gid of a group named in /etc/group (local groups, as docker.sock's "docker" is). */
async function groupId(name: string): Promise<number> {
  const groups = await readFile('/etc/group', 'utf8').catch(() => '');
  for (const line of groups.split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && /^\d+$/.test(gid ?? '')) return Number(gid);
  }
  throw new NsdnsError('ERR_CONFIG', `--socket-group "${name}": no such group in /etc/group`);
}

function isAlive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
}
