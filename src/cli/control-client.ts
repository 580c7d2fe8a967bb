// The CLI side of the control socket: one request per connection, one response line back.
import net from 'node:net';
import { NsdnsError } from '../errors.js';
import type { ControlResponse } from '../daemon/control-protocol.js';

/** Far above any real answer, even an inspect of every endpoint of a large host; a bound all the same, so a socket that is not nsdns's cannot fill the CLI's memory. */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/** The start of the error when the daemon went away with a request unanswered (see `lostMidRequest`). */
const LOST = 'the daemon closed the connection before answering';

/** True when `err` says the daemon stopped (or was killed) while it worked on the request. */
export function lostMidRequest(err: unknown): boolean {
  return err instanceof NsdnsError && err.code === 'ERR_DAEMON_UNREACHABLE' && err.message.startsWith(LOST);
}

export async function call<T>(socketPath: string, method: string, params: unknown = {}, timeoutMs = 60_000): Promise<T> {
  const response = await new Promise<ControlResponse>((resolve, reject) => {
    const socket = net.connect(socketPath);
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (err: Error) => { clearTimeout(timer); socket.destroy(); reject(err); };
    const timer = setTimeout(() => fail(new NsdnsError('ERR_DAEMON_UNREACHABLE', `the daemon did not answer ${method} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => socket.write(`${JSON.stringify({ id: 1, method, params })}\n`));
    socket.on('data', (chunk: Buffer) => {
      // Look for the newline in the new chunk only: a large answer arrives in many chunks.
      const newline = chunk.indexOf(10);
      chunks.push(newline < 0 ? chunk : chunk.subarray(0, newline));
      size += chunk.length;
      if (newline < 0 && size <= MAX_RESPONSE_BYTES) return;
      if (newline < 0) return fail(new NsdnsError('ERR_INTERNAL', `the daemon's answer to ${method} is over ${MAX_RESPONSE_BYTES} bytes`));
      clearTimeout(timer);
      socket.destroy();
      const parsed = parseResponse(Buffer.concat(chunks).toString('utf8'));
      if (parsed) resolve(parsed);
      else reject(new NsdnsError('ERR_INTERNAL', `the daemon's answer to ${method} is not a control response (is ${socketPath} an nsdns socket?)`));
    });
    socket.on('close', () => fail(new NsdnsError('ERR_DAEMON_UNREACHABLE', `${LOST} ${method} (did it stop?)`)));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        fail(new NsdnsError('ERR_DAEMON_UNREACHABLE', `the nsdns daemon is not running (nothing listens on ${socketPath}); start it with \`nsdns serve\` (or give --socket PATH)`));
      } else if (err.code === 'EACCES') {
        fail(new NsdnsError('ERR_DAEMON_UNREACHABLE', `permission denied on ${socketPath}: the control socket is for root (and the --socket-group of \`nsdns serve\`, when it sets one)`));
      } else fail(err);
    });
  });
  if (!response.ok) throw new NsdnsError(response.error.code as NsdnsError['code'], response.error.message);
  return response.result as T;
}

/** The response when the line is one; a hand check, so the CLI starts without loading zod. */
function parseResponse(line: string): ControlResponse | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as { ok?: unknown; error?: { code?: unknown; message?: unknown } | null };
  if (r.ok === true) return value as ControlResponse;
  if (r.ok === false && typeof r.error?.code === 'string' && typeof r.error.message === 'string') return value as ControlResponse;
  return undefined;
}
