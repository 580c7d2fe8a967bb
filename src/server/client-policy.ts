// Who may ask what at one listener: a value given to its DnsServer, decided by whoever set the
// listener up (src/listeners/). Three outcomes per client address: no reply at all (a listener
// reachable from outside must not reflect spoofed traffic), REFUSED (a misdirected client stops
// retrying at once), or an answer from the resolver. Which networks an answered client sees is the
// listener's ListenerContext (its view, or a view per client).
import type { ClientFilter } from './client-filter.js';

export interface ClientPolicy {
  /** The clients that get any reply; the rest are dropped unread. Absent: every client. */
  readonly reachable?: ClientFilter;
  /** Of those, the clients whose questions go to the resolver; the rest get REFUSED. Absent: all. */
  readonly answered?: ClientFilter;
}

/** Every client is answered: a namespace's own 127.0.0.11 (only the namespace reaches it). */
export const ANSWER_ALL: ClientPolicy = {};
