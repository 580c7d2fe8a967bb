// 127.0.0.11:53 inside a namespace. A Node process cannot enter a namespace, but a helper started
// there can bind and hand the sockets back (helper-process.ts): the native nsdns-bind enters the
// namespace itself and binds at once; without it, Node's bind-helper.js runs under nsenter.
import { formatHostPort } from '../host-port.js';
import { fileURLToPath } from 'node:url';
import { NsdnsError } from '../errors.js';
import { nativeHelperPath, nativeHelperUsable } from '../native/helpers.js';
import { HelperProcess, type HelperSockets } from './helper-process.js';

const NODE_HELPER = fileURLToPath(new URL('./bind-helper.js', import.meta.url));
/** Built by src/native/build.mjs when a C compiler was there at install time. */
const NATIVE_HELPER = nativeHelperPath('nsdns-bind');

export const RESOLVER_ADDRESS = '127.0.0.11';

/** Which bind helper serves: the native one when it was built and not switched off (NSDNS_NATIVE=0). */
export function bindHelperKind(): 'native' | 'node' {
  return nativeHelperUsable(NATIVE_HELPER) ? 'native' : 'node';
}

/** How long a prepared helper waits for its bind before it is dropped. */
const PREPARED_TTL_MS = 30_000;

/** Binds the resolver's address in namespaces, by path; a helper can be started early (prepare). */
export class NamespaceSocketSource {
  private readonly prepared = new Map<string, { helper: HelperProcess; timer: NodeJS.Timeout }>();
  readonly kind = bindHelperKind();
  /**
   * A Node helper is a full Node start: more than a few at once only slow each other down on a
   * small machine. A native one is done at once; more at once keep the daemon's loop busy instead
   * of waiting for each helper's exit (a start with many namespaces).
   */
  readonly parallel = this.kind === 'native' ? 16 : 4;

  constructor(private readonly address = RESOLVER_ADDRESS, private readonly port = 53, private readonly timeoutMs = 30_000) {}

  /** Starts the helper for `netnsPath` early, so its start-up overlaps the rest of a connect. */
  prepare(netnsPath: string): void {
    // The native helper starts at once: nothing to win. A few at a time: many Node start-ups at
    // once would only slow each other down.
    if (this.kind === 'native' || this.prepared.has(netnsPath) || this.prepared.size >= 4) return;
    const timer = setTimeout(() => this.cancel(netnsPath), PREPARED_TTL_MS);
    timer.unref();
    this.prepared.set(netnsPath, { helper: this.helper(netnsPath), timer });
  }

  /** Drops a prepared helper that will not be needed (the connect failed). */
  cancel(netnsPath: string): void {
    const entry = this.prepared.get(netnsPath);
    if (!entry) return;
    this.prepared.delete(netnsPath);
    clearTimeout(entry.timer);
    entry.helper.abandon();
  }

  /** The sockets, and the namespace the helper bound them in (the one `netnsPath` named when it opened it). */
  bind(netnsPath: string): Promise<HelperSockets> {
    const entry = this.prepared.get(netnsPath);
    this.prepared.delete(netnsPath);
    if (entry) clearTimeout(entry.timer);
    return (entry?.helper ?? this.helper(netnsPath)).bind();
  }

  private helper(netnsPath: string): HelperProcess {
    const native = this.kind === 'native';
    const [command, args] = native
      ? [NATIVE_HELPER, [netnsPath, this.address, String(this.port)]]
      : ['nsenter', [`--net=${netnsPath}`, '--', process.execPath, NODE_HELPER, this.address, String(this.port)]];
    return new HelperProcess(command, args, {
      udps: 1,
      timeoutMs: this.timeoutMs,
      waitsForBind: !native,
      where: formatHostPort(this.address, this.port),
      failure: (reason) => new NsdnsError('ERR_NETNS_BIND', `cannot serve DNS in ${netnsPath}: ${reason}`),
    });
  }
}
