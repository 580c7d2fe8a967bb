// The probes themselves, from the host side: a TCP connect, or an HTTP GET that reads only the
// status line (no redirect followed, no header or body read). Each ends its socket on every path
// and tells its result in our own words, never with bytes from the peer. The deadline is the
// prober's (checked on its tick), not a timer per probe: a probe runs until it has a result or is
// stopped. Callbacks, not promises or AbortSignals: the probes of many endpoints at short intervals
// run on the thread that answers DNS, so what each one allocates adds up.
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { formatHostPort } from '../host-port.js';
import type { HealthCheck } from '../registry/types.js';
import type { ProbeResult } from './state-machine.js';

/** HTTP: `HTTP/1.x NNN` and the character after it, all a probe reads of a reply. */
const STATUS_HEAD = 13;

/**
 * Starts a probe; `done` is called exactly once. Returns a function that stops it: done gets
 * `stopped` at once (the prober also stops a probe at its deadline).
 */
export type Probe = (address: string, check: HealthCheck, done: (result: ProbeResult) => void) => () => void;

/** An error code in words; only a known code is named, never a message that could carry text. */
export function codeText(code: unknown): string {
  switch (code) {
    case 'ECONNREFUSED': return 'connection refused';
    case 'ECONNRESET': return 'connection reset';
    case 'EHOSTUNREACH': return 'host unreachable';
    case 'ENETUNREACH': return 'network unreachable';
    case 'EADDRNOTAVAIL': return 'address not available';
    default: return typeof code === 'string' && /^[A-Z_]{1,32}$/.test(code) ? code : 'error';
  }
}

interface TcpHandle {
  connect(req: object, address: string, port: number): number;
  connect6(req: object, address: string, port: number): number;
  close(cb?: () => void): void;
  reset?(cb?: () => void): number;
  // The stream side, for the HTTP probe.
  readStart?(): number;
  writeLatin1String?(req: object, data: string): number;
  onread?: (this: TcpHandle, buffer: ArrayBuffer | undefined) => void;
  /** The probe this handle is for (read by the shared onread). */
  probe?: RawTcp;
}
interface StreamBinding {
  WriteWrap: new () => { handle?: TcpHandle; oncomplete?: () => void };
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
}
interface ConnectReq {
  oncomplete?: (this: ConnectReq, status: number) => void;
  /** The probe this connect is for (read by the shared oncomplete). */
  probe?: RawTcp;
}
interface TcpBinding {
  TCP: new (type: number) => TcpHandle;
  TCPConnectWrap: new () => ConnectReq;
  constants: { SOCKET: number };
}

let binding: TcpBinding | null | undefined;
let streams: StreamBinding | null | undefined;

/**
 * libuv's TCP handle without node's stream around it (what net.Socket itself wraps): a probe only
 * connects and closes, and the stream (buffers, events, state) is most of what it would cost. Null when this node has
 * no such binding; net.connect is used then.
 */
function tcpBinding(): TcpBinding | null {
  if (binding === undefined) {
    try {
      const b = (process as unknown as { binding(name: string): TcpBinding }).binding('tcp_wrap');
      binding = typeof b?.TCP === 'function' && typeof b.TCPConnectWrap === 'function' && typeof b.constants?.SOCKET === 'number' ? b : null;
    } catch {
      binding = null;
    }
  }
  return binding;
}

/** The stream half of the bare handle (read and write), for HTTP; null when this node lacks it. */
function streamBinding(): StreamBinding | null {
  if (streams === undefined) {
    try {
      const s = (process as unknown as { binding(name: string): StreamBinding }).binding('stream_wrap');
      const proto = tcpBinding()?.TCP.prototype as TcpHandle | undefined;
      streams = typeof s?.WriteWrap === 'function' && s.streamBaseState instanceof Int32Array && typeof s.kReadBytesOrError === 'number'
        && typeof s.kArrayBufferOffset === 'number' && typeof proto?.readStart === 'function' && typeof proto.writeLatin1String === 'function' ? s : null;
    } catch {
      streams = null;
    }
  }
  return streams;
}

/**
 * One TCP probe on the bare handle: an object with the connect's callback shared by all (node
 * calls it on the request, which points back here), and the stop function its only closure.
 */
class RawTcp {
  private ended = false;
  readonly start = Date.now();
  /** HTTP: the reply's first bytes so far (at most STATUS_HEAD). */
  head = '';
  constructor(readonly handle: TcpHandle, private readonly done: (r: ProbeResult) => void, readonly request?: string) {}

  /** First outcome wins; the handle is closed, with a reset once connected (no TIME_WAIT left per probe). */
  end(ok: boolean, detail: string, connected: boolean): void {
    if (this.ended) return;
    this.ended = true;
    // No close callback: node then calls no JS when the handle is gone.
    if (connected && this.handle.reset) this.handle.reset();
    else this.handle.close();
    this.done({ ok, detail, start: this.start, end: Date.now() });
  }
}

function onConnect(this: ConnectReq, status: number): void {
  const probe = this.probe;
  this.probe = undefined;
  if (status === 0) probe?.end(true, 'connected', true);
  else probe?.end(false, codeText(getSystemErrorName(status)), false);
}

function rawTcpProbe(b: TcpBinding, address: string, check: HealthCheck, done: (r: ProbeResult) => void): () => void {
  return rawConnect(new RawTcp(new b.TCP(b.constants.SOCKET), done), b, address, check.port, onConnect);
}

/** Starts a probe's connect on its bare handle; returns what stops it. */
function rawConnect(probe: RawTcp, b: TcpBinding, address: string, port: number, oncomplete: (this: ConnectReq, status: number) => void): () => void {
  const req = new b.TCPConnectWrap();
  req.oncomplete = oncomplete;
  req.probe = probe;
  // Addresses come validated from the registry: a colon means IPv6.
  const h = probe.handle;
  const err = address.includes(':') ? h.connect6(req, address, port) : h.connect(req, address, port);
  if (err !== 0) {
    req.probe = undefined;
    probe.end(false, codeText(getSystemErrorName(err)), false);
  }
  return () => probe.end(false, 'stopped', false);
}

const noop = (): void => undefined;
const UV_EOF = -4095;

/** HTTP on the bare handle, connected: start reading, write the request. */
function onHttpConnect(this: ConnectReq, status: number): void {
  const probe = this.probe;
  this.probe = undefined;
  if (!probe) return;
  if (status !== 0) return probe.end(false, codeText(getSystemErrorName(status)), false);
  const h = probe.handle;
  const s = streams!;
  h.probe = probe;
  h.onread = onHttpRead;
  const write = new s.WriteWrap();
  write.handle = h;
  write.oncomplete = noop;
  const err = h.readStart!() || h.writeLatin1String!(write, probe.request!);
  if (err !== 0) probe.end(false, codeText(getSystemErrorName(err)), true);
}

/** Bytes or the end of the reply (node calls this on the handle; the count is in streamBaseState). */
function onHttpRead(this: TcpHandle, buffer: ArrayBuffer | undefined): void {
  const probe = this.probe;
  if (!probe) return;
  const s = streams!;
  const nread = s.streamBaseState[s.kReadBytesOrError];
  // Closed before a status line: what node:http called a socket hang up.
  if (nread === UV_EOF) return probe.end(false, 'connection reset', true);
  if (nread < 0) return probe.end(false, codeText(getSystemErrorName(nread)), true);
  if (nread === 0 || buffer === undefined) return;
  // Bytes are kept only until STATUS_HEAD have come (a reply may come in small pieces).
  const take = Math.min(nread, STATUS_HEAD - probe.head.length);
  probe.head += Buffer.from(buffer, s.streamBaseState[s.kArrayBufferOffset], take).toString('latin1');
  if (probe.head.length < STATUS_HEAD && !probe.head.includes('\n')) return;
  const m = STATUS_LINE.exec(probe.head);
  if (!m) return probe.end(false, 'not an HTTP reply', true);
  const status = Number(m[1]);
  probe.end(status >= 200 && status < 400, `HTTP ${status}`, true);
}

function rawHttpProbe(b: TcpBinding, address: string, check: HealthCheck, request: string, done: (r: ProbeResult) => void): () => void {
  return rawConnect(new RawTcp(new b.TCP(b.constants.SOCKET), done, request), b, address, check.port, onHttpConnect);
}

/**
 * A probe on Node's socket (where the bare handle is not there): the connection and its one end,
 * reset rather than closed once connected, reported once.
 */
function socketConnect(address: string, port: number, done: (r: ProbeResult) => void): { socket: net.Socket; end: (ok: boolean, detail: string) => void } {
  const start = Date.now();
  let ended = false;
  const socket = net.connect({ host: address, port, noDelay: true });
  const end = (ok: boolean, detail: string): void => {
    if (ended) return;
    ended = true;
    if (socket.connecting || socket.destroyed) socket.destroy();
    else socket.resetAndDestroy();
    done({ ok, detail, start, end: Date.now() });
  };
  socket.once('error', (err: NodeJS.ErrnoException) => end(false, codeText(err.code)));
  return { socket, end };
}

export function socketTcpProbe(address: string, check: HealthCheck, done: (r: ProbeResult) => void): () => void {
  const { socket, end } = socketConnect(address, check.port, done);
  socket.once('connect', () => end(true, 'connected'));
  return () => end(false, 'stopped');
}

export const tcpProbe: Probe = (address, check, done) => {
  const b = tcpBinding();
  return b ? rawTcpProbe(b, address, check, done) : socketTcpProbe(address, check, done);
};

/** What the path may hold (healthCheckSchema's rule, checked again: it goes into a request line). */
const PATH = /^\/[\x21-\x7e]{0,255}$/;
/** `HTTP/1.x NNN` and a space or the line's end. */
const STATUS_LINE = /^HTTP\/1\.[01] ([1-5]\d\d)[ \r\n]/;

/**
 * A GET written by hand (node:http's agent, parser and message objects were most of this probe's
 * cost): only the status code is read, the first STATUS_HEAD bytes, and the connection is reset
 * then. 2xx and 3xx are healthy, as docker's curl -f; a redirect is not followed. On the bare
 * handle where node has it (as the TCP probe), else on a net.Socket.
 */
export const httpProbe: Probe = (address, check, done) => {
  const path = check.path ?? '/';
  if (!PATH.test(path)) {
    const now = Date.now();
    done({ ok: false, detail: 'invalid path', start: now, end: now });
    return () => undefined;
  }
  const request = `GET ${path} HTTP/1.1\r\nHost: ${formatHostPort(address, check.port)}\r\nUser-Agent: nsdns-health\r\nAccept: */*\r\nConnection: close\r\n\r\n`;
  const b = tcpBinding();
  if (b && streamBinding()) return rawHttpProbe(b, address, check, request, done);
  return socketHttpProbe(address, check, request, done);
};

export function socketHttpProbe(address: string, check: HealthCheck, request: string, done: (r: ProbeResult) => void): () => void {
  const { socket, end } = socketConnect(address, check.port, done);
  let head: Buffer | undefined;
  socket.once('connect', () => {
    socket.write(request, 'latin1');
  });
  // end() reports once and destroys the socket: nothing after the status line is looked at.
  socket.on('data', (chunk: Buffer) => {
    // Bytes are kept only until STATUS_HEAD have come (a reply may come in small pieces).
    head = head === undefined ? chunk : Buffer.concat([head, chunk.subarray(0, STATUS_HEAD)]);
    if (head.length < STATUS_HEAD && head.indexOf(10) < 0) return;
    const m = STATUS_LINE.exec(head.toString('latin1', 0, STATUS_HEAD));
    if (!m) return end(false, 'not an HTTP reply');
    const status = Number(m[1]);
    end(status >= 200 && status < 400, `HTTP ${status}`);
  });
  // Closed before a status line: what node:http called a socket hang up.
  socket.once('end', () => end(false, 'connection reset'));
  return () => end(false, 'stopped');
}

export function probeFor(check: HealthCheck): Probe {
  return check.type === 'http' ? httpProbe : tcpProbe;
}
