// One node name, one daemon. Every announcing daemon holds PREFIX/nodes/<node> on its lease, put
// only if absent: a second daemon given the same --node-name (or a cloned machine with a copied
// state directory) would otherwise put and delete the first one's endpoint keys as its own. The
// value names the daemon by its host and state directory, so a daemon that restarts (after a
// crash, or a handover's successor) takes its own key over at once instead of waiting out the
// old lease, while another daemon is refused until that one is gone.
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import type { Etcd3, Lease } from 'etcd3';
import { z } from 'zod';
import { NsdnsError } from '../errors.js';

export interface NodeOwner {
  /** A digest of the host name and the state directory: one per daemon, the same across its restarts. */
  owner: string;
  /** For people reading the refusal (and etcdctl): the host name. */
  host: string;
}

const ownerValue = z.object({ owner: z.string().regex(/^[0-9a-f]{16}$/), host: z.string().max(253) }).strict();

/** This daemon's claim: its host, and the state directory only one daemon of a host can hold. */
export function nodeOwner(stateDir: string): NodeOwner {
  const host = hostname();
  return { owner: createHash('sha256').update(`${host}\0${path.resolve(stateDir)}`).digest('hex').slice(0, 16), host: host.slice(0, 253) };
}

export const nodeKey = (prefix: string, node: string) => `${prefix}/nodes/${node}`;

/**
 * Puts the node's key on `lease` when it is absent or this daemon's own (an earlier run's);
 * throws ERR_CONFLICT, naming the other daemon's host, when another daemon holds it.
 */
export async function claimNode(client: Etcd3, prefix: string, node: string, lease: Lease, me: NodeOwner): Promise<void> {
  const key = nodeKey(prefix, node);
  const value = JSON.stringify(me);
  const created = await client.if(key, 'Create', '==', 0).then(lease.put(key).value(value)).else(client.get(key)).commit();
  if (created.succeeded) return;
  const raw = created.responses[0]?.response_range?.kvs[0]?.value.toString() ?? '';
  const theirs = parseOwner(raw);
  if (theirs?.owner === me.owner) {
    // Ours from before (a restart, a handover): moved onto this lease, unless it changed meanwhile.
    const moved = await client.if(key, 'Value', '==', raw).then(lease.put(key).value(value)).commit();
    if (moved.succeeded) return;
  }
  const who = theirs ? `a daemon on host ${JSON.stringify(theirs.host.slice(0, 64))}` : 'something else (the value there is not a node claim)';
  throw new NsdnsError('ERR_CONFLICT', `node name ${JSON.stringify(node)} is held in etcd by ${who}; this daemon announces nothing until it is free: give each daemon its own --node-name`);
}

function parseOwner(raw: string): NodeOwner | undefined {
  try {
    const parsed = ownerValue.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
