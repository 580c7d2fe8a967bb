// The probes themselves, from the host side: a TCP connect, or an HTTP GET with no redirect
// followed and no body read (the socket is dropped once the headers are in). Each has one hard
// deadline covering connect and reply and ends its socket on every path; the result is told in
// our own words, never with bytes from the peer.
import http from 'node:http';
import net from 'node:net';
import type { HealthCheck } from '../registry/types.js';
import type { ProbeResult } from './state-machine.js';

/** HTTP: headers larger than this fail the probe (node's parser stops there). */
const HEADER_MAX = 8192;

export type Probe = (address: string, check: HealthCheck, signal: AbortSignal) => Promise<ProbeResult>;

/** A socket error in words; only a known code is named, never a message that could carry text. */
function errorText(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  switch (code) {
    case 'ECONNREFUSED': return 'connection refused';
    case 'ECONNRESET': return 'connection reset';
    case 'EHOSTUNREACH': return 'host unreachable';
    case 'ENETUNREACH': return 'network unreachable';
    case 'EADDRNOTAVAIL': return 'address not available';
    case 'HPE_HEADER_OVERFLOW': return 'reply headers too large';
    case 'ABORT_ERR': return 'stopped';
    default: return typeof code === 'string' && /^[A-Z_]{1,32}$/.test(code) ? code : 'error';
  }
}

/** Runs `body` with a deadline; `finish` may be called once, later calls are ignored. */
function withDeadline(check: HealthCheck, signal: AbortSignal, body: (finish: (ok: boolean, detail: string) => void, cleanup: (fn: () => void) => void) => void): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const start = Date.now();
    const cleanups: Array<() => void> = [];
    let done = false;
    const finish = (ok: boolean, detail: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      for (const fn of cleanups) fn();
      resolve({ ok, detail, start, end: Date.now() });
    };
    const onAbort = (): void => finish(false, 'stopped');
    const timer = setTimeout(() => finish(false, `timed out after ${check.timeoutMs} ms`), check.timeoutMs);
    if (signal.aborted) return finish(false, 'stopped');
    signal.addEventListener('abort', onAbort, { once: true });
    body(finish, (fn) => cleanups.push(fn));
  });
}

export const tcpProbe: Probe = (address, check, signal) => withDeadline(check, signal, (finish, cleanup) => {
  const socket = net.connect({ host: address, port: check.port, noDelay: true });
  // Reset rather than close: the host side would otherwise hold a TIME_WAIT entry per probe
  // (1 000 endpoints every 2 s would keep 30 000 of them).
  cleanup(() => (socket.connecting || socket.destroyed ? socket.destroy() : socket.resetAndDestroy()));
  socket.once('connect', () => finish(true, 'connected'));
  socket.once('error', (err) => finish(false, errorText(err)));
});

export const httpProbe: Probe = (address, check, signal) => withDeadline(check, signal, (finish, cleanup) => {
  const host = address.includes(':') ? `[${address}]:${check.port}` : `${address}:${check.port}`;
  const req = http.request({
    host: address, port: check.port, path: check.path ?? '/', method: 'GET', agent: false, maxHeaderSize: HEADER_MAX,
    headers: { host, 'user-agent': 'nsdns-health', accept: '*/*', connection: 'close' },
  });
  cleanup(() => req.destroy());
  req.once('error', (err) => finish(false, errorText(err)));
  req.once('response', (res) => {
    res.once('error', () => undefined);
    // 2xx and 3xx are healthy, as docker's curl -f; a redirect is not followed, and the body is
    // not read: the socket is dropped once the status line and headers are in.
    const status = res.statusCode ?? 0;
    finish(status >= 200 && status < 400, `HTTP ${status}`);
  });
  req.end();
});

export function probeFor(check: HealthCheck): Probe {
  return check.type === 'http' ? httpProbe : tcpProbe;
}
