// Applies nsdns's nftables table. Only that table is ever touched; other tables and rulesets on
// the host are left alone. The table is sent as JSON (`nft -j -f -`), never as ruleset text.
// The table heals itself: what was applied is remembered (the commands, and the table as the
// kernel listed it right after), so a table deleted or changed by someone else (`nft flush
// ruleset`, a firewall reload) is noticed by verify() and written again.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NsdnsError } from '../errors.js';
import type { NetworkRecord } from '../registry/types.js';
import { Mutex } from './mutex.js';
import { buildRuleset, deleteTable, tableFingerprint, type NftJson } from './nft-rules.js';

export interface Firewall {
  /** `records`: only the networks nsdns provisioned itself (never a registry file's). */
  apply(records: readonly NetworkRecord[]): Promise<void>;
}

/** What verify() found: the table as applied, none expected, or restored after it was gone or changed. */
export type Verdict = 'ok' | 'none' | 'restored-gone' | 'restored-changed';

export class NftFirewall implements Firewall {
  private readonly lock = new Mutex();
  /** The last transaction applied; undefined until the first apply. */
  private applied: NftJson | undefined;
  /** The table as listed right after that apply; undefined when it should not exist. */
  private expected: string | undefined;

  constructor(readonly table: string) {}

  apply(records: readonly NetworkRecord[]): Promise<void> {
    const any = records.some((r) => r.network.bridge !== undefined);
    return this.lock.run(() => this.write(any ? buildRuleset(this.table, records) : deleteTable(this.table), any));
  }

  private async write(commands: NftJson, present: boolean): Promise<void> {
    await this.run(commands);
    this.applied = commands;
    this.expected = present ? await this.listed() : undefined;
  }

  /**
   * Compares the kernel's table to what was applied, and writes it again when it is gone or
   * differs. One `nft -j list table` when all is well.
   */
  verify(): Promise<Verdict> {
    return this.lock.run(async () => {
      if (this.applied === undefined || this.expected === undefined) return 'none';
      const now = await this.listed();
      if (now === this.expected) return 'ok';
      await this.write(this.applied, true);
      return now === undefined ? 'restored-gone' : 'restored-changed';
    });
  }

  /** `nsdns firewall-reload`: writes the last table again, whatever the kernel holds now. */
  reload(): Promise<string> {
    return this.lock.run(async () => {
      if (this.applied === undefined) return `nothing applied yet: table inet ${this.table} is written with the first network`;
      const present = this.expected !== undefined;
      await this.write(this.applied, present);
      return present ? `re-applied table inet ${this.table}` : `no network needs table inet ${this.table}; it is absent`;
    });
  }

  /** The table as the kernel lists it, normalized; undefined when it does not exist. */
  private async listed(): Promise<string | undefined> {
    const { execa } = await import('execa');
    const r = await execa('nft', ['-j', 'list', 'table', 'inet', this.table], { reject: false, timeout: 10_000, maxBuffer: 64 * 1024 * 1024 });
    if (r.exitCode !== 0) return undefined;
    return tableFingerprint(r.stdout);
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
