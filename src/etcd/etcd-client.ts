// An etcd3 client for an etcd:// location, with TLS and auth from the daemon's etcd settings.
// etcd3 (and gRPC under it) is imported here only, when an etcd:// option is given: a daemon
// without etcd never loads it. Files are read once here; their contents never reach a log or an
// error message (a message names the file and the system's reason).
import { readFileSync } from 'node:fs';
import type { Etcd3, IOptions } from 'etcd3';
import { NsdnsError, errorMessage } from '../errors.js';
import type { EtcdLocation } from './etcd-url.js';

/** How to reach etcd beyond its address: `--etcd-cacert`, `--etcd-cert`, `--etcd-key`, `--etcd-user`, `--etcd-password-file`. */
export interface EtcdAccess {
  /** CA certificate (PEM) that signs the servers' certificates: given, the client speaks TLS. */
  cacert?: string;
  /** Client certificate and key (PEM), for a server that asks for one (--client-cert-auth). */
  cert?: string;
  key?: string;
  user?: string;
  /** A file holding the user's password (its first line). */
  passwordFile?: string;
}

/** A unary call (a list, a put) that takes longer than this fails: the caller retries, nothing hangs on a stopped server. */
const CALL_TIMEOUT_MS = 5000;
const MAX_MESSAGE = 64 * 1024 * 1024;

/** Reads `path` for `what`, or throws ERR_CONFIG naming the file and why (never its content). */
function readSetting(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new NsdnsError('ERR_CONFIG', `cannot read ${what} ${JSON.stringify(path.slice(0, 200))}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, { cause: err });
  }
}

/** The etcd3 options for `location` and `access` (the files read, the password taken from its file). */
export function etcdOptions(location: EtcdLocation, access: EtcdAccess = {}): IOptions {
  if ((access.cert === undefined) !== (access.key === undefined)) {
    throw new NsdnsError('ERR_CONFIG', '--etcd-cert and --etcd-key go together: give both or neither');
  }
  if (access.cert !== undefined && access.cacert === undefined) {
    throw new NsdnsError('ERR_CONFIG', '--etcd-cert needs --etcd-cacert (the client certificate is sent over TLS only)');
  }
  if ((access.user === undefined) !== (access.passwordFile === undefined)) {
    throw new NsdnsError('ERR_CONFIG', '--etcd-user and --etcd-password-file go together: give both or neither');
  }
  const tls = access.cacert !== undefined;
  const options: IOptions = {
    hosts: location.hosts.map((host) => `${tls ? 'https' : 'http'}://${host}`),
    dialTimeout: CALL_TIMEOUT_MS,
    // Watches are streams without a deadline; every other call gets one.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
    // etcd3's circuit breaker would refuse calls for 5 s after three failures: the source retries
    // with its own backoff and must see etcd back as soon as it is.
    faultHandling: { host: () => passThrough, global: passThrough },
    // gRPC's default of 4 MB would refuse a page of large values (a list page holds up to 256).
    grpcOptions: { 'grpc.max_receive_message_length': MAX_MESSAGE },
  };
  if (tls) {
    options.credentials = {
      rootCertificate: readSetting(access.cacert!, 'the etcd CA certificate'),
      ...(access.cert !== undefined && { certChain: readSetting(access.cert, 'the etcd client certificate'), privateKey: readSetting(access.key!, 'the etcd client key') }),
    };
  }
  if (access.user !== undefined) {
    const password = readSetting(access.passwordFile!, 'the etcd password file').toString('utf8').split(/\r?\n/)[0];
    if (password.length === 0) throw new NsdnsError('ERR_CONFIG', `the etcd password file ${JSON.stringify(access.passwordFile!.slice(0, 200))} is empty`);
    options.auth = { username: access.user, password };
  }
  return options;
}

/** A client for `location`; it connects on its first call. Close it with `close()`. */
export async function connectEtcd(location: EtcdLocation, access: EtcdAccess = {}): Promise<Etcd3> {
  const options = etcdOptions(location, access);
  const { Etcd3 } = await import('etcd3');
  return new Etcd3(options);
}

/** A fault-handling policy that runs the call once, as it is (cockatiel's IPolicy shape). */
const passThrough = {
  execute: <T>(fn: (context: { signal: AbortSignal; attempt: number }) => T | Promise<T>) => Promise.resolve().then(() => fn({ signal: new AbortController().signal, attempt: 0 })),
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
} as unknown as NonNullable<NonNullable<IOptions['faultHandling']>['host']> extends (h: string) => infer P ? P : never;
