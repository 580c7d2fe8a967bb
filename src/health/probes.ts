// The probes themselves, from the host side: a TCP connect, or an HTTP GET with no redirect
// followed and no body read (the socket is dropped once the headers are in). Each has one hard
// deadline covering connect and reply and ends its socket on every path; the result is told in
// our own words, never with bytes from the peer. Callbacks, not promises or AbortSignals: a
// thousand endpoints every two seconds is 500 probes a second, and each microsecond shows.
import http from 'node:http';
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { HealthCheck } from '../registry/types.js';
import type { ProbeResult } from './state-machine.js';

/** HTTP: headers larger than this fail the probe (node's parser stops there). */
const HEADER_MAX = 8192;

/** Starts a probe; `done` is called exactly once. Returns a function that stops it (done gets `stopped`). */
export type Probe = (address: string, check: HealthCheck, done: (result: ProbeResult) => void) => () => void;

/** An error code in words; only a known code is named, never a message that could carry text. */
function codeText(code: unknown): string {
  switch (code) {
    case 'ECONNREFUSED': return 'connection refused';
    case 'ECONNRESET': return 'connection reset';
    case 'EHOSTUNREACH': return 'host unreachable';
    case 'ENETUNREACH': return 'network unreachable';
    case 'EADDRNOTAVAIL': return 'address not available';
    case 'HPE_HEADER_OVERFLOW': return 'reply headers too large';
    default: return typeof code === 'string' && /^[A-Z_]{1,32}$/.test(code) ? code : 'error';
  }
}

/**
 * Runs `body` under the check's deadline. `finish` may be called any number of times; the first
 * call wins, runs the cleanup and reports.
 */
function withDeadline(check: HealthCheck, done: (r: ProbeResult) => void, body: (finish: (ok: boolean, detail: string) => void) => () => void): () => void {
  const start = Date.now();
  let finished = false;
  let cleanup: (() => void) | undefined;
  const finish = (ok: boolean, detail: string): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    cleanup?.();
    done({ ok, detail, start, end: Date.now() });
  };
  const timer = setTimeout(() => finish(false, `timed out after ${check.timeoutMs} ms`), check.timeoutMs);
  cleanup = body(finish);
  if (finished) cleanup();
  return () => finish(false, 'stopped');
}

interface TcpHandle {
  connect(req: object, address: string, port: number): number;
  connect6(req: object, address: string, port: number): number;
  close(cb?: () => void): void;
  reset?(cb?: () => void): number;
}
interface TcpBinding {
  TCP: new (type: number) => TcpHandle;
  TCPConnectWrap: new () => { oncomplete?: (status: number) => void };
  constants: { SOCKET: number };
}

let binding: TcpBinding | null | undefined;

/**
 * libuv's TCP handle without node's stream around it (what net.Socket itself wraps): a probe only
 * connects and closes, and the stream costs more than half of its CPU. Null when this node has
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

const noop = (): void => undefined;

/** Connects with the bare handle; closes with a reset so the host keeps no TIME_WAIT entry per probe. */
function rawTcpProbe(b: TcpBinding, address: string, check: HealthCheck, done: (r: ProbeResult) => void): () => void {
  return withDeadline(check, done, (finish) => {
    const handle = new b.TCP(b.constants.SOCKET);
    let connected = false;
    let closed = false;
    const req = new b.TCPConnectWrap();
    req.oncomplete = (status) => {
      if (status === 0) {
        connected = true;
        finish(true, 'connected');
      } else {
        finish(false, codeText(getSystemErrorName(status)));
      }
    };
    const err = net.isIPv6(address) ? handle.connect6(req, address, check.port) : handle.connect(req, address, check.port);
    if (err !== 0) finish(false, codeText(getSystemErrorName(err)));
    return () => {
      if (closed) return;
      closed = true;
      if (connected && handle.reset) handle.reset(noop);
      else handle.close(noop);
    };
  });
}

/** Node's socket: where the bare handle is not there. */
function socketTcpProbe(address: string, check: HealthCheck, done: (r: ProbeResult) => void): () => void {
  return withDeadline(check, done, (finish) => {
    const socket = net.connect({ host: address, port: check.port, noDelay: true });
    socket.once('connect', () => finish(true, 'connected'));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(false, codeText(err.code)));
    return () => (socket.connecting || socket.destroyed ? socket.destroy() : socket.resetAndDestroy());
  });
}

export const tcpProbe: Probe = (address, check, done) => {
  const b = tcpBinding();
  return b ? rawTcpProbe(b, address, check, done) : socketTcpProbe(address, check, done);
};

export const httpProbe: Probe = (address, check, done) => withDeadline(check, done, (finish) => {
  const host = address.includes(':') ? `[${address}]:${check.port}` : `${address}:${check.port}`;
  const req = http.request({
    host: address, port: check.port, path: check.path ?? '/', method: 'GET', agent: false, maxHeaderSize: HEADER_MAX,
    headers: { host, 'user-agent': 'nsdns-health', accept: '*/*', connection: 'close' },
  });
  req.once('error', (err: NodeJS.ErrnoException) => finish(false, codeText(err.code)));
  req.once('response', (res) => {
    res.once('error', noop);
    // 2xx and 3xx are healthy, as docker's curl -f; a redirect is not followed, and the body is
    // not read: the socket is dropped once the status line and headers are in.
    const status = res.statusCode ?? 0;
    finish(status >= 200 && status < 400, `HTTP ${status}`);
  });
  req.end();
  return () => req.destroy();
});

export function probeFor(check: HealthCheck): Probe {
  return check.type === 'http' ? httpProbe : tcpProbe;
}
