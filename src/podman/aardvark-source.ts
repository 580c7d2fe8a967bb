// The aardvark configuration directory as a registry source (`aardvark:<dir>`): load() reads every
// file, installs the networks that parse (again only when their file changed), withdraws the
// networks whose file is gone, and says which gateway addresses each served network wants. It runs at start and on every SIGHUP (netavark
// signals after each change); there is no watcher, as aardvark has none. A file that is refused
// (unreadable, a symlink, too large, not in the format) is one log line naming the file; a network
// it served before keeps its last good content, the others keep serving. A network another source
// already provides is refused the same way (the registry's ownership rule).
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry } from '../registry/registry.js';
import { readRegistryFile, safeText } from '../daemon/registry-loader.js';
import type { ListenAddresses } from '../listeners/aardvark-spec.js';
import { AARDVARK_LIMITS, parseAardvarkFile, type AardvarkLimits } from './aardvark-config.js';

/** Files looked at per load: a directory stuffed with files cannot make a reload endless. */
const MAX_FILES = 4096;

export class AardvarkSource {
  readonly source: string;
  /** Served network → the file it came from, its listen addresses and its digest (its last good content). */
  private readonly served = new Map<string, { file: string; listen: string[]; digest: string }>();
  /** Files loaded and files refused so far (for /metrics). */
  loaded = 0;
  refused = 0;

  constructor(
    private readonly registry: Registry,
    readonly dir: string,
    private readonly log: Logger,
    private readonly limits: AardvarkLimits = AARDVARK_LIMITS,
  ) {
    this.source = `aardvark:${dir}`;
  }

  /** Reads the directory again and brings the registry in line with it. */
  async load(): Promise<ListenAddresses> {
    const names = (await readdir(this.dir)).sort();
    if (names.length > MAX_FILES) this.log.error({ dir: safeText(this.dir), files: names.length }, `more than ${MAX_FILES} files; the rest are not read`);
    /** Network → the file that stands for it in this load. */
    const present = new Map<string, string>();
    for (const file of names.slice(0, MAX_FILES)) {
      const network = await this.loadFile(file, present);
      if (network !== undefined) present.set(network, file);
    }
    for (const [network, { file }] of this.served) {
      if (present.has(network)) continue;
      this.served.delete(network);
      this.registry.removeNetwork(network, this.source);
      this.log.info({ file: safeText(file), network }, 'aardvark config file gone; network withdrawn');
    }
    return new Map([...this.served].map(([network, { listen }]) => [network, listen]));
  }

  /** Loads one file; returns the network it stands for when that network keeps being served. */
  private async loadFile(file: string, present: ReadonlyMap<string, string>): Promise<string | undefined> {
    const full = path.join(this.dir, file);
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readRegistryFile(full, this.limits.maxBytes, 'the aardvark config size limit');
    } catch (err) {
      return this.refuse(file, `${safeText(file)}: ${errorMessage(err)}`);
    }
    if (bytes === undefined) return undefined; // removed while we read the directory
    // netavark rewrites only the files a change touches, then signals: the others are not parsed
    // again, so a reload is done before the client netavark serves asks its first question.
    const digest = createHash('sha256').update(bytes).digest('base64');
    const same = [...this.served].find(([, s]) => s.file === file && s.digest === digest)?.[0];
    if (same !== undefined && !present.has(same)) return same;
    const outcome = parseAardvarkFile(file, bytes, this.limits);
    if (outcome.kind === 'ignored') return undefined;
    if (outcome.kind === 'refused') return this.refuse(file, outcome.problem);
    const { record, listen } = outcome.network;
    const name = record.network.name;
    const first = present.get(name);
    if (first !== undefined) {
      // `net` and `net%int` at once: the first one read (sorted) has the network.
      this.refuse(file, `${safeText(file)}: network "${name}" is already read from ${safeText(first)}`);
      return undefined;
    }
    try {
      this.registry.setNetwork(record, this.source);
    } catch (err) {
      return this.refuse(file, errorMessage(err));
    }
    this.served.set(name, { file, listen, digest });
    this.loaded++;
    this.log.info({ file: safeText(file), network: name, endpoints: record.endpoints.length }, 'aardvark config file loaded');
    return name;
  }

  /** One line naming the file and the problem; a network the file served keeps its last good content. */
  private refuse(file: string, problem: string): string | undefined {
    this.refused++;
    const kept = [...this.served].find(([, s]) => s.file === file)?.[0];
    this.log.error({ file: safeText(file), err: { code: 'ERR_REGISTRY_FILE', message: safeText(problem) }, keptNetwork: kept },
      kept ? `aardvark config file refused; network "${kept}" keeps its last good content` : 'aardvark config file refused');
    return kept;
  }
}
