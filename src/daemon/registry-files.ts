// Registry directories of hand-written files, one network per file (*.yaml, *.yml, *.json).
// chokidar reports each change; only the network of the changed file is reloaded. A file that no
// longer parses is reported and its last good content keeps serving.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import { parseDocumentText } from '../registry/document.js';
import type { Registry } from '../registry/registry.js';
import type { Logger } from '../log.js';

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
  /** File → the text last read, so a repeated event for the same content does nothing. */
  private readonly lastText = new Map<string, string>();
  private readonly recheck = new Map<string, NodeJS.Timeout[]>();

  constructor(private readonly registry: Registry, private readonly log: Logger, readonly limits: RegistryFileLimits) {}

  /** Loads every file in `dirs`, then keeps watching them. Resolves once the first load is done. */
  async watch(dirs: readonly string[]): Promise<void> {
    await this.close();
    if (dirs.length === 0) return;
    const watcher = chokidar.watch([...dirs], {
      depth: 0,
      ignoreInitial: false,
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
    watcher.on('add', onFile).on('change', onFile).on('unlink', (file) => this.unload(file));
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
   * its ~50 ms window; two more reads make sure the last write is what serves.
   */
  private scheduleRecheck(file: string): void {
    for (const timer of this.recheck.get(file) ?? []) clearTimeout(timer);
    this.recheck.set(file, RECHECK_MS.map((ms) => setTimeout(() => void this.load(file), ms)));
  }

  private async load(file: string): Promise<void> {
    const source = `file:${file}`;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.error({ err, file }, 'registry file unreadable');
      return;
    }
    if (this.lastText.get(file) === text) return;
    this.lastText.set(file, text);
    try {
      const record = parseDocumentText(text, file);
      const previous = this.networkOf.get(file);
      this.registry.setNetwork(record, source);
      this.networkOf.set(file, record.network.name);
      if (previous !== undefined && previous !== record.network.name) this.registry.removeNetwork(previous, source);
      this.log.info({ file, network: record.network.name, endpoints: record.endpoints.length }, 'registry file loaded');
    } catch (err) {
      const kept = this.networkOf.get(file);
      this.log.error({ err, file, keptNetwork: kept }, kept ? `registry file rejected; network "${kept}" keeps its last good content` : 'registry file rejected');
    }
  }

  private unload(file: string): void {
    const network = this.networkOf.get(file);
    if (network === undefined) return;
    this.networkOf.delete(file);
    this.lastText.delete(file);
    this.registry.removeNetwork(network, `file:${file}`);
    this.log.info({ file, network }, 'registry file removed; network withdrawn');
  }

  async close(): Promise<void> {
    for (const timers of this.recheck.values()) for (const timer of timers) clearTimeout(timer);
    this.recheck.clear();
    await this.watcher?.close();
    this.watcher = undefined;
  }
}
