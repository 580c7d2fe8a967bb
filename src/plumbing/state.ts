// The daemon's own state directory: one JSON file per network it owns (networks/<name>.json),
// written atomically (temp file, fsync, rename) so a crash leaves the old or the new file, never
// half of one. The daemon is the only writer.
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { NsdnsError } from '../errors.js';
import { toRecord } from '../registry/document.js';
import { isIfname, isNetnsPath } from '../registry/fields.js';
import type { NetworkRecord } from '../registry/types.js';
import { NAMESPACE_IDENTITY } from '../namespace-identity.js';

export { STATE_SOURCE } from '../registry/registry.js';

export async function writeFileAtomic(file: string, content: string, mode = 0o644): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  const handle = await open(tmp, 'w', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}

/** Temp files of atomic writes a killed process never renamed: they hold nothing committed. */
async function removeTempFiles(dir: string): Promise<void> {
  for (const f of await readdir(dir)) if (f.endsWith('.tmp')) await rm(path.join(dir, f), { force: true });
}

/**
 * A state file is a registry document plus what only the daemon writes: each endpoint's
 * netnsIdentity, taken out before the document is validated (registry files may not set it) and
 * put back on the endpoint it came with.
 */
function withIdentities(data: unknown, file: string): NetworkRecord {
  const identities = new Map<string, string>();
  const endpoints = (data as { endpoints?: unknown } | null)?.endpoints;
  if (Array.isArray(endpoints)) {
    (data as { endpoints: unknown[] }).endpoints = endpoints.map((e: unknown) => {
      if (typeof e !== 'object' || e === null || !('netnsIdentity' in e)) return e;
      const { netnsIdentity, ...rest } = e as Record<string, unknown>;
      if (typeof netnsIdentity !== 'string' || !NAMESPACE_IDENTITY.test(netnsIdentity) || typeof rest.id !== 'string') {
        throw new NsdnsError('ERR_STATE', `state file ${file} is unreadable: an endpoint's netnsIdentity is not DEV:INO with its id`);
      }
      identities.set(rest.id, netnsIdentity);
      return rest;
    });
  }
  const record = toRecord(data, file);
  for (const e of record.endpoints) {
    const identity = identities.get(e.id);
    if (identity !== undefined) e.netnsIdentity = identity;
  }
  return record;
}

export class StateStore {
  constructor(readonly dir: string) {}

  private get networksDir(): string {
    return path.join(this.dir, 'networks');
  }

  /** Every saved network; a file that fails validation stops the start with a clear message. */
  async load(): Promise<NetworkRecord[]> {
    await mkdir(this.networksDir, { recursive: true, mode: 0o700 });
    await removeTempFiles(this.networksDir);
    const files = (await readdir(this.networksDir)).filter((f) => f.endsWith('.json')).sort();
    const records: NetworkRecord[] = [];
    for (const f of files) {
      const file = path.join(this.networksDir, f);
      let data: unknown;
      try {
        data = JSON.parse(await readFile(file, 'utf8'));
      } catch (err) {
        // JSON.parse's message quotes the file: say only that it is not JSON.
        throw new NsdnsError('ERR_STATE', `state file ${file} is unreadable: ${err instanceof SyntaxError ? 'not valid JSON' : (err as Error).message}`, { cause: err });
      }
      records.push(withIdentities(data, file));
    }
    return records;
  }

  async save(record: NetworkRecord): Promise<void> {
    const { network, endpoints } = record;
    const doc = { ...network, endpoints: endpoints.map(({ network: _n, ...e }) => e) };
    await writeFileAtomic(path.join(this.networksDir, `${network.name}.json`), `${JSON.stringify(doc, null, 2)}\n`, 0o600);
  }

  async remove(name: string): Promise<void> {
    await rm(path.join(this.networksDir, `${name}.json`), { force: true });
  }
}

/**
 * Write-ahead notes for connects in progress: written before a veth is created, removed once the
 * endpoint is committed. A daemon killed in between finds the note at start and removes the link,
 * so nothing is orphaned.
 */
export type ConnectIntent = {
  endpointId: string;
  network: string;
  netns: string;
} & (
  /** A veth: its host end. */
  | { hostIf: string; ifname?: undefined }
  /** A macvlan/ipvlan link: its name inside the namespace (nothing of it is on the host). */
  | { ifname: string; hostIf?: undefined }
);

export class IntentStore {
  constructor(private readonly dir: string) {}

  private file(id: string): string {
    return path.join(this.dir, 'pending', `${id}.json`);
  }

  async write(intent: ConnectIntent): Promise<void> {
    await writeFileAtomic(this.file(intent.endpointId), JSON.stringify(intent), 0o600);
  }

  async remove(id: string): Promise<void> {
    await rm(this.file(id), { force: true });
  }

  async list(): Promise<ConnectIntent[]> {
    const dir = path.join(this.dir, 'pending');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await removeTempFiles(dir);
    const out: ConnectIntent[] = [];
    for (const f of (await readdir(dir)).filter((n) => n.endsWith('.json'))) {
      try {
        const intent = JSON.parse(await readFile(path.join(dir, f), 'utf8')) as ConnectIntent;
        // Its link name goes to `ip link del`: a note that is not exactly what we write is dropped.
        const oneLink = intent?.hostIf !== undefined ? isIfname(intent.hostIf) && intent.ifname === undefined : isIfname(intent?.ifname);
        if (typeof intent?.endpointId === 'string' && typeof intent.network === 'string' && oneLink && isNetnsPath(intent.netns)) out.push(intent);
        else await rm(path.join(dir, f), { force: true });
      } catch {
        await rm(path.join(dir, f), { force: true });
      }
    }
    return out;
  }
}
