// Registry directories of hand-written files, one network per file (*.yaml, *.yml, *.json).
// chokidar reports each change; only the network of the changed file is reloaded. A file that is
// refused (a symlink, too large, not UTF-8, not a valid document) is reported by name and problem,
// never by content, and its network's last good content keeps serving. Files are read and parsed
// off the event loop (registry-loader.ts), so a large or hostile file never stalls DNS.
import path from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import { errorMessage } from '../errors.js';
import type { Registry } from '../registry/registry.js';
import type { Logger } from '../log.js';
import { parserLimitsFor, readRegistryFile, RegistryParser, safeText } from './registry-loader.js';

export interface RegistryFileLimits {
  /** Larger files are refused without being read. */
  maxBytes: number;
}

const REGISTRY_FILE = /\.(ya?ml|json)$/i;
/** Re-reads after an event, inside and just past chokidar's 50 ms change throttle. */
const RECHECK_MS = [20, 60];

export class RegistryFiles {
  private watcher: FSWatcher | undefined;
  /** File → the network it last defined successfully. */
  private readonly networkOf = new Map<string, string>();
  /**
   * File → what its last load saw: the content's hash, or the refusal before reading. A repeated
   * event for the same thing does nothing (and logs nothing). Never the text itself.
   */
  private readonly lastSeen = new Map<string, string>();
  /** File → its last operation: loads and removals of one file run in order, never interleaved. */
  private readonly busy = new Map<string, Promise<void>>();
  private readonly recheck = new Map<string, NodeJS.Timeout[]>();
  private readonly parser: RegistryParser;

  constructor(private readonly registry: Registry, private readonly log: Logger, readonly limits: RegistryFileLimits) {
    this.parser = new RegistryParser(parserLimitsFor(limits.maxBytes));
  }

  /** Loads every file in `dirs`, then keeps watching them. Resolves once the first load is done. */
  async watch(dirs: readonly string[]): Promise<void> {
    await this.stopWatching();
    if (dirs.length === 0) return;
    const watcher = chokidar.watch([...dirs], {
      depth: 0,
      ignoreInitial: false,
      // A link is reported as itself (and refused), its target is never watched.
      followSymlinks: false,
      ignored: (file, stats) => stats?.isFile() === true && !REGISTRY_FILE.test(file),
    });
    this.watcher = watcher;
    const initial: Promise<void>[] = [];
    let ready = false;
    const onFile = (file: string) => {
      if (!REGISTRY_FILE.test(file)) return;
      const load = this.load(file);
      if (!ready) initial.push(load);
      else this.scheduleRecheck(file);
    };
    watcher.on('add', onFile).on('change', onFile).on('unlink', (file) => void this.serially(file, () => this.unload(file)));
    watcher.on('error', (err) => this.log.error({ err }, 'registry watcher error'));
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    ready = true;
    await Promise.all(initial);
    for (const dir of dirs) this.log.info({ dir, networks: this.networksIn(dir) }, 'registry directory loaded');
  }

  private networksIn(dir: string): string[] {
    const abs = path.resolve(dir);
    return [...this.networkOf].filter(([file]) => path.resolve(file).startsWith(abs + path.sep)).map(([, n]) => n);
  }

  /**
   * chokidar throttles change events per file and drops a second atomic replace that lands within
   * its throttle window; two more reads make sure the last write is what serves.
   */
  private scheduleRecheck(file: string): void {
    for (const timer of this.recheck.get(file) ?? []) clearTimeout(timer);
    this.recheck.set(file, RECHECK_MS.map((ms) => setTimeout(() => void this.load(file), ms)));
  }

  private load(file: string): Promise<void> {
    return this.serially(file, () => this.loadNow(file));
  }

  private serially(file: string, step: () => Promise<void> | void): Promise<void> {
    const next = (this.busy.get(file) ?? Promise.resolve()).then(step).catch((err) => this.refuse(file, errorMessage(err)));
    this.busy.set(file, next);
    void next.then(() => { if (this.busy.get(file) === next) this.busy.delete(file); });
    return next;
  }

  private async loadNow(file: string): Promise<void> {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await readRegistryFile(file, this.limits.maxBytes);
    } catch (err) {
      const seen = `refused:${errorMessage(err)}`;
      if (this.lastSeen.get(file) === seen) return;
      this.lastSeen.set(file, seen);
      return this.refuse(file, errorMessage(err));
    }
    if (bytes === undefined) return;
    const source = `file:${file}`;
    const previous = this.networkOf.get(file);
    const outcome = await this.parser.parse(file, bytes, this.lastSeen.get(file), (network, tables, notable) => {
      this.registry.setPackedNetwork(network, tables, notable, source);
    });
    if (outcome.kind === 'unchanged') return;
    if (outcome.hash !== undefined) this.lastSeen.set(file, outcome.hash);
    else this.lastSeen.delete(file);
    if (outcome.kind === 'refused') return this.refuse(file, outcome.problem);
    const name = outcome.network.name;
    this.networkOf.set(file, name);
    if (previous !== undefined && previous !== name) this.registry.removeNetwork(previous, source);
    this.log.info({ file: safeText(file), network: name, endpoints: outcome.total }, 'registry file loaded');
  }

  /** One line naming the file and the problem: escaped and capped, whatever produced the text. */
  private refuse(file: string, problem: string): void {
    const kept = this.networkOf.get(file);
    // Parser messages start with the path already; the reader's and the parser thread's do not.
    const err = { code: 'ERR_REGISTRY_FILE', message: safeText(problem.startsWith(`${file}: `) ? problem : `${file}: ${problem}`) };
    this.log.error({ file: safeText(file), err, keptNetwork: kept },
      kept ? `registry file refused; network "${kept}" keeps its last good content` : 'registry file refused');
  }

  private unload(file: string): void {
    this.lastSeen.delete(file);
    const network = this.networkOf.get(file);
    if (network === undefined) return;
    this.networkOf.delete(file);
    this.registry.removeNetwork(network, `file:${file}`);
    this.log.info({ file: safeText(file), network }, 'registry file removed; network withdrawn');
  }

  /** Stops watching, for good: jobs still queued end unjudged (the daemon is stopping). */
  async close(): Promise<void> {
    await this.stopWatching();
    await this.parser.close();
  }

  /** Stops watching (watch() starts again with other directories). */
  private async stopWatching(): Promise<void> {
    for (const timers of this.recheck.values()) for (const timer of timers) clearTimeout(timer);
    this.recheck.clear();
    await this.watcher?.close();
    this.watcher = undefined;
    await this.parser.stop();
  }
}
