// Loop protection at the control boundary: an upstream given to a network or an endpoint may not
// be nsdns itself (127.0.0.11 in every namespace, or an address the daemon's host listeners hold).
// The resolver would drop such a forward as a loop, and the namespace would quietly fall back to
// the daemon's upstreams instead of the ones asked for; refusing the request says so at once.
import { NsdnsError } from '../errors.js';
import { RESOLVER_ADDRESS } from '../listeners/namespace-sockets.js';
import { parseUpstream } from '../resolver/upstream-address.js';

/** Refuses any of `upstreams` (given with `flag`) that is nsdns itself; `own`: the host listeners' ADDRESS:PORT keys. */
export function refuseOwnAddresses(flag: string, upstreams: readonly string[] | undefined, own: ReadonlySet<string>): void {
  for (const text of upstreams ?? []) {
    let server: ReturnType<typeof parseUpstream>;
    try {
      server = parseUpstream(text);
    } catch {
      continue; // not an address at all: the planner says so
    }
    const wildcard = server.family === 4 ? `0.0.0.0:${server.port}` : `[::]:${server.port}`;
    const loopback = server.family === 4 ? server.host.startsWith('127.') : server.host === '::1';
    if (server.host === RESOLVER_ADDRESS || own.has(server.key) || (loopback && own.has(wildcard))) {
      const which = server.host === RESOLVER_ADDRESS ? 'is where nsdns answers inside every namespace' : 'is an address this nsdns daemon listens on';
      throw new NsdnsError('ERR_BAD_REQUEST', `${flag} ${server.key}: ${which}, so it cannot be an upstream (queries would loop); give the DNS server nsdns should forward to`);
    }
  }
}
