// The name this daemon announces its endpoints under (PREFIX/endpoints/<network>/<node>/…). The
// default is the host name plus an id kept in the state directory: stable across restarts (a
// restarted daemon replaces its own keys), and two daemons on one machine are never one node.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { NsdnsError } from '../errors.js';

/** A node name is one key part: letters, digits, '.', '_' and '-' (never '.' or '..' alone). */
const NODE_NAME = /^[A-Za-z0-9._-]{1,128}$/;
const NODE_ID = /^[0-9a-f]{8}$/;

export function isNodeName(text: string): boolean {
  return NODE_NAME.test(text) && text !== '.' && text !== '..';
}

/** `given` (--node-name), checked; else `<host name>-<id from stateDir/node-id>`, the id made once. */
export async function nodeName(given: string | undefined, stateDir: string): Promise<string> {
  if (given !== undefined) {
    if (!isNodeName(given)) throw new NsdnsError('ERR_CONFIG', `node name ${JSON.stringify(given.slice(0, 80))} is not a key part (1-128 letters, digits, ".", "_" and "-")`);
    return given;
  }
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 100) || 'host';
  return `${host}-${await nodeId(stateDir)}`;
}

async function nodeId(stateDir: string): Promise<string> {
  const file = path.join(stateDir, 'node-id');
  const kept = await readFile(file, 'utf8').then((text) => text.trim(), () => undefined);
  if (kept !== undefined && NODE_ID.test(kept)) return kept;
  const id = randomBytes(4).toString('hex');
  // Written whole, then renamed: a crash leaves no half id that a restart would replace.
  await mkdir(stateDir, { recursive: true });
  await writeFile(`${file}.tmp`, `${id}\n`);
  await rename(`${file}.tmp`, file);
  return id;
}
