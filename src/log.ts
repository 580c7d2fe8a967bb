// The root pino logger. Modules take a child (`log.child({ module })`) so every line says where it
// came from; only the daemon decides the level and the destination.
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination: NodeJS.WritableStream = process.stdout): Logger {
  const tty = destination === process.stdout && process.stdout.isTTY;
  if (tty) {
    // Loaded only on a terminal: a daemon under systemd never pays for it.
    const pretty = createRequire(import.meta.url)('pino-pretty') as (options: object) => DestinationStream;
    return pino({ level }, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
  }
  return pino({ level, base: { pid: process.pid } }, destination as DestinationStream);
}

export const silentLogger: Logger = pino({ level: 'silent' });

/** Logs at most once per interval; the calls it swallowed are counted into the next line. */
export function rateLimited(intervalMs: number): (emit: (suppressed: number) => void) => void {
  let last = -Infinity;
  let suppressed = 0;
  return (emit) => {
    const now = Date.now();
    if (now - last < intervalMs) {
      suppressed++;
      return;
    }
    last = now;
    emit(suppressed);
    suppressed = 0;
  };
}
