// Applies nsdns's nftables table. Only that table is ever touched; other tables and rulesets on
// the host are left alone. The table is sent as JSON (`nft -j -f -`), never as ruleset text.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NsdnsError } from '../errors.js';
import type { NetworkRecord } from '../registry/types.js';
import { buildRuleset, deleteTable, type NftJson } from './nft-rules.js';

export interface Firewall {
  /** `records`: only the networks nsdns provisioned itself (never a registry file's). */
  apply(records: readonly NetworkRecord[]): Promise<void>;
}

export class NftFirewall implements Firewall {
  constructor(readonly table: string) {}

  async apply(records: readonly NetworkRecord[]): Promise<void> {
    const any = records.some((r) => r.network.bridge !== undefined);
    await this.run(any ? buildRuleset(this.table, records) : deleteTable(this.table));
  }

  private async run(commands: NftJson): Promise<void> {
    const { execa } = await import('execa');
    const r = await withFile(JSON.stringify(commands), (file) => execa('nft', ['-j', '-f', file], { reject: false }));
    if (r.exitCode !== 0) throw new NsdnsError('ERR_FIREWALL', `nft refused the ${this.table} table: ${r.stderr.trim().split('\n').slice(0, 4).join('; ').slice(0, 500)}`);
  }
}

/**
 * nft 1.0's JSON reader opens its input by name, and /dev/stdin cannot be opened when stdin is a
 * socket (as Node gives children): so the input goes through a private file (0700 directory).
 */
export async function withFile<T>(content: string, use: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'nsdns-nft-'));
  try {
    const file = path.join(dir, 'ruleset.json');
    await writeFile(file, content, { mode: 0o600 });
    return await use(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** For hosts without nftables, and for tests that do not look at the firewall. */
export class NoFirewall implements Firewall {
  async apply(): Promise<void> {}
}
