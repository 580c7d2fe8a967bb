// `etcd://HOST:PORT[,HOST:PORT…]/PREFIX`: where a shared registry lives (`--registry`, `--announce`).
// The path is the key prefix, leading slash included; keys under it are PREFIX/networks/… and
// PREFIX/endpoints/…. Checked here once, so nothing unchecked reaches the client or the log.
import { NsdnsError } from '../errors.js';
import { formatHostPort, parseHostPort } from '../host-port.js';

export interface EtcdLocation {
  /** The servers as `HOST:PORT` (IPv6 in brackets). */
  hosts: string[];
  /** The key prefix, starting with '/' and without a trailing '/'. */
  prefix: string;
  /** The URL as given, for messages and the source's name. */
  url: string;
}

const MAX_HOSTS = 16;
const MAX_URL = 1024;
/** Key prefixes are path-like: what a person types, nothing a key listing could confuse. */
const PREFIX = /^(\/[A-Za-z0-9_.-]+)+$/;

export function isEtcdUrl(text: string): boolean {
  return text.startsWith('etcd://');
}

/** Parses an etcd:// URL, or throws ERR_CONFIG saying what is wrong with it. */
export function parseEtcdUrl(text: string): EtcdLocation {
  const bad = (why: string) => new NsdnsError('ERR_CONFIG', `${JSON.stringify(text.slice(0, 80))} is not an etcd registry: ${why} (etcd://HOST:PORT[,HOST:PORT…]/PREFIX)`);
  if (text.length > MAX_URL) throw bad('too long');
  if (!isEtcdUrl(text)) throw bad('it must start with etcd://');
  const rest = text.slice('etcd://'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) throw bad(slash === 0 ? 'no server' : 'no key prefix');
  const prefix = rest.slice(slash).replace(/\/+$/, '');
  if (!PREFIX.test(prefix) || prefix.split('/').some((part) => part === '.' || part === '..')) {
    throw bad('the key prefix is one or more /WORDs of letters, digits, ".", "_" and "-"');
  }
  const hosts = rest.slice(0, slash).split(',');
  if (hosts.length > MAX_HOSTS) throw bad(`more than ${MAX_HOSTS} servers`);
  const parsed = hosts.map((host) => {
    const hp = parseHostPort(host, { allowZero: false });
    if (!hp) throw bad(`"${host.slice(0, 60)}" is not IP:PORT`);
    return formatHostPort(hp.host, hp.port);
  });
  return { hosts: parsed, prefix, url: text };
}

/** The keys of a shared registry under `prefix`. */
export const etcdKeys = {
  networks: (prefix: string) => `${prefix}/networks/`,
  network: (prefix: string, network: string) => `${prefix}/networks/${network}`,
  endpoints: (prefix: string) => `${prefix}/endpoints/`,
  networkEndpoints: (prefix: string, network: string) => `${prefix}/endpoints/${network}/`,
  nodeEndpoints: (prefix: string, network: string, node: string) => `${prefix}/endpoints/${network}/${node}/`,
  endpoint: (prefix: string, network: string, node: string, endpoint: string) => `${prefix}/endpoints/${network}/${node}/${endpoint}`,
  /** An overlay network's claimed addresses (cluster-addresses.ts): one key per address, its value the holding node. */
  networkAddresses: (prefix: string, network: string) => `${prefix}/addresses/${network}/`,
  address: (prefix: string, network: string, address: string) => `${prefix}/addresses/${network}/${address}`,
};
