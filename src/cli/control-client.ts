// The CLI side of the control socket.
import net from 'node:net';
import { NsdnsError } from '../errors.js';
import type { ControlResponse } from '../daemon/control-protocol.js';

export async function call<T>(socketPath: string, method: string, params: unknown = {}, timeoutMs = 60_000): Promise<T> {
  const response = await new Promise<ControlResponse>((resolve, reject) => {
    const socket = net.connect(socketPath);
    let buffered = '';
    const timer = setTimeout(() => { socket.destroy(); reject(new NsdnsError('ERR_DAEMON_UNREACHABLE', `the daemon did not answer ${method} within ${timeoutMs} ms`)); }, timeoutMs);
    socket.on('connect', () => socket.write(`${JSON.stringify({ id: 1, method, params })}\n`));
    socket.on('data', (chunk) => {
      buffered += chunk.toString();
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(JSON.parse(buffered.slice(0, newline)) as ControlResponse);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      reject(new NsdnsError('ERR_DAEMON_UNREACHABLE', `the daemon closed the connection before answering ${method} (did it stop?)`));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new NsdnsError('ERR_DAEMON_UNREACHABLE', `the nsdns daemon is not running (nothing listens on ${socketPath}); start it with \`nsdns serve\` (or give --socket PATH)`));
      } else if (err.code === 'EACCES') {
        reject(new NsdnsError('ERR_DAEMON_UNREACHABLE', `permission denied on ${socketPath}: the control socket is for root`));
      } else reject(err);
    });
  });
  if (!response.ok) throw new NsdnsError(response.error.code as NsdnsError['code'], response.error.message);
  return response.result as T;
}
