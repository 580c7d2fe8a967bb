// Applies nsdns's nftables table. Only that table is ever touched; other tables and rulesets on
// the host are left alone.
import { NsdnsError } from '../errors.js';
import type { NetworkRecord } from '../registry/types.js';
import { buildRuleset, deleteTableScript, replaceTableScript } from './nft-rules.js';

export interface Firewall {
  apply(records: readonly NetworkRecord[]): Promise<void>;
}

export class NftFirewall implements Firewall {
  constructor(readonly table: string) {}

  async apply(records: readonly NetworkRecord[]): Promise<void> {
    const any = records.some((r) => r.network.bridge !== undefined);
    await this.run(any ? replaceTableScript(this.table, buildRuleset(this.table, records)) : deleteTableScript(this.table));
  }

  private async run(script: string): Promise<void> {
    const { execa } = await import('execa');
    const r = await execa('nft', ['-f', '-'], { input: script, reject: false });
    if (r.exitCode !== 0) throw new NsdnsError('ERR_FIREWALL', `nft refused the ${this.table} table: ${r.stderr.trim().split('\n').slice(0, 4).join('; ')}`);
  }
}

/** For hosts without nftables, and for tests that do not look at the firewall. */
export class NoFirewall implements Firewall {
  async apply(): Promise<void> {}
}
