// The names an endpoint may take on its network. An endpoint's own name is unique; an alias may be
// shared by any number of endpoints but may not be another endpoint's own name; an id answers as a
// name too (its first 12 characters as well) and may be neither another endpoint's id nor another's
// name or alias; a static record may not take an endpoint's name or alias. Checked over the index
// the names are packed into (packed.ts), so a file of 90 000 endpoints is checked as it is packed,
// without an object per name.
import { idKey, isLongId, isNameId, SHORT_ID_LENGTH } from './ids.js';
import { IndexWriter } from './packed.js';
import type { Endpoint, Network } from './types.js';

/** What an endpoint holds a name key as (IndexWriter kinds). */
export const NAME = 1;
export const ALIAS = 2;
/** Its whole id (12 or more hex digits). */
export const ID = 4;
/** The first 12 characters of a longer id. */
export const SHORT = 8;

/** What the rules read of an endpoint. */
export type Named = Pick<Endpoint, 'id' | 'name' | 'aliases'>;

/**
 * Every name key an endpoint is found by, in the order the indexes take them: its own name,
 * aliases, whole and short id (lower case).
 */
export function nameKeys(e: Named, visit: (key: string, kind: number) => void): void {
  visit(e.name, NAME);
  for (const alias of e.aliases) visit(alias, ALIAS);
  const id = idKey(e.id);
  if (isNameId(id)) {
    visit(id, ID);
    if (id.length > SHORT_ID_LENGTH) visit(id.slice(0, SHORT_ID_LENGTH), SHORT);
  }
}

/** Records the name keys of a network's endpoints into a names index, and finds what breaks the rules. */
export class NameRules {
  /** Key number of endpoint i's own name (how problems name it). */
  private nameKeys = new Uint32Array(256);
  /** Ids that are not names (not 12 or more hex digits): checked, never indexed. */
  private readonly plainIds = new Map<string, number>();
  private readonly found: string[] = [];

  /** `names`: the index the keys go to (a packed network's, or one made only to check). */
  constructor(readonly names: IndexWriter = new IndexWriter()) {}

  /** Adds endpoint i (endpoints come in order, from 0). */
  add(e: Named, i: number): void {
    if (i >= this.nameKeys.length) {
      const bigger = new Uint32Array(this.nameKeys.length * 2);
      bigger.set(this.nameKeys);
      this.nameKeys = bigger;
    }
    nameKeys(e, (key, kind) => {
      // A long id is found by its short id (ids.ts); duplicates of it are found there too.
      if (kind === ID && isLongId(key)) return;
      const k = this.names.add(key, i, kind !== ALIAS, kind);
      if (kind === NAME) this.nameKeys[i] = k;
    });
    // Ids compare in any case (the control API finds endpoints by a lower-case id).
    const id = e.id.toLowerCase();
    if (!isNameId(id)) {
      if (this.plainIds.has(id)) this.found.push(`endpoint id ${e.id} appears twice`);
      else this.plainIds.set(id, i);
    }
  }

  /** Every problem (empty when all is well); `idOf(i)`: endpoint i's id, asked only when two long ids share a short id. */
  problems(network: Network, idOf: (i: number) => string): string[] {
    const problems = [...this.found];
    const { names } = this;
    const nameOf = (i: number) => names.keyText(this.nameKeys[i]);
    const holders: number[] = [];
    const kinds: number[] = [];
    const collect = (endpoint: number, kind: number) => { holders.push(endpoint); kinds.push(kind); };
    for (let k = 0; k < names.keyCount; k++) {
      holders.length = 0;
      kinds.length = 0;
      names.forEachHolder(k, collect);
      if (holders.length === 1) continue; // one holder breaks no rule
      const key = names.keyText(k);
      const named = kinds.filter((kind) => kind & NAME).length;
      for (let n = 1; n < named; n++) problems.push(`name "${key}" is used by two endpoints`);
      // The id's holder as a map from ids to holders would have it: a later whole id replaces it, a short id only fills a gap.
      let idHolder = -1;
      let shorts = 0;
      holders.forEach((h, at) => {
        if (named > 0 && (kinds[at] & (ALIAS | NAME)) === ALIAS) problems.push(`alias "${key}" of "${nameOf(h)}" is the name of endpoint "${key}"`);
        if (kinds[at] & ID) {
          if (idHolder >= 0) problems.push(`endpoint id ${key} appears twice`);
          idHolder = h;
        }
        if (kinds[at] & SHORT) {
          shorts++;
          if (idHolder < 0) idHolder = h;
        }
      });
      if (idHolder >= 0) this.takenById(problems, key, holders, kinds, nameOf(idHolder), nameOf);
      if (shorts > 1) longIdTwice(problems, holders.filter((_, at) => kinds[at] & SHORT), idOf);
    }
    for (const [id, holder] of this.plainIds) {
      const k = names.find(id);
      if (k < 0) continue;
      holders.length = 0;
      kinds.length = 0;
      names.forEachHolder(k, collect);
      this.takenById(problems, id, holders, kinds, nameOf(holder), nameOf);
    }
    problems.push(...recordProblems(network, (name) => {
      const k = names.find(name);
      let taken = false;
      if (k >= 0) names.forEachHolder(k, (_, kind) => { if (kind & (NAME | ALIAS)) taken = true; });
      return taken;
    }));
    return problems;
  }

  /** A name or alias that is the id of another endpoint. */
  private takenById(problems: string[], key: string, holders: number[], kinds: number[], idHolder: string, nameOf: (i: number) => string): void {
    holders.forEach((h, at) => {
      for (const kind of [NAME, ALIAS]) {
        if (kinds[at] & kind && nameOf(h) !== idHolder) problems.push(`"${key}" of "${nameOf(h)}" is the id of endpoint "${idHolder}"`);
      }
    });
  }
}

/** Long ids are indexed by their short id only: endpoints sharing one are compared whole. */
function longIdTwice(problems: string[], endpoints: number[], idOf: (i: number) => string): void {
  const seen = new Set<string>();
  for (const i of endpoints) {
    const id = idKey(idOf(i));
    if (!isLongId(id)) continue;
    if (seen.has(id)) problems.push(`endpoint id ${id} appears twice`);
    seen.add(id);
  }
}

/** A static record may not take an endpoint's name or alias, and a CNAME stands alone. */
function recordProblems(network: Network, taken: (name: string) => boolean): string[] {
  const problems: string[] = [];
  const records = network.records ?? [];
  const cnames = records.filter((r) => r.type === 'CNAME');
  const cname = new Set(cnames.map((r) => r.name));
  for (const r of records) {
    if (taken(r.name)) problems.push(`record "${r.name}" has the name of an endpoint or alias of network "${network.name}"`);
    if (r.type !== 'CNAME' && cname.has(r.name)) problems.push(`record "${r.name}" is a CNAME and cannot have other records`);
  }
  if (cname.size !== cnames.length) problems.push('a record name has two CNAMEs');
  return problems;
}

/** The name problems of a network given as objects (state files, control requests): an index made only to check. */
export function nameProblems(network: Network, endpoints: readonly Endpoint[]): string[] {
  const rules = new NameRules();
  endpoints.forEach((e, i) => rules.add(e, i));
  return rules.problems(network, (i) => endpoints[i].id);
}

/**
 * Why `joining` may not join `network` beside `endpoints` (which keep the rules), in the words of
 * a connect refusal; undefined when it may. The rules decide as for files (NameRules); the
 * sentence names who holds the name the new endpoint wanted.
 */
export function joinProblem(network: Network, endpoints: readonly Named[], joining: Named): string | undefined {
  const all: Named[] = [...endpoints, joining];
  // Sized beforehand: a name and a short id per endpoint, 12 bytes or so each.
  const rules = new NameRules(new IndexWriter(all.length * 2, all.length * 24));
  all.forEach((e, i) => rules.add(e, i));
  const problems = rules.problems(network, (i) => all[i].id);
  if (problems.length === 0) return undefined;
  let found: string | undefined;
  const where = (key: string) => `the name "${key}" is already used on network "${network.name}" by`;
  const records = new Set((network.records ?? []).map((r) => r.name));
  nameKeys(joining, (key, kind) => {
    if (found !== undefined || !(kind & (NAME | ALIAS))) return;
    const held = holdersOf(rules.names, key, all.length - 1);
    const owner = held.find((h) => h.kinds & NAME) ?? held.find((h) => h.kinds & (ID | SHORT)) ?? (kind === NAME ? held.find((h) => h.kinds & ALIAS) : undefined);
    if (owner) {
      const holder = all[owner.endpoint].name;
      if (owner.kinds & NAME) found = `${where(key)} endpoint "${holder}"${kind === ALIAS ? " (an alias may be shared, but not be another endpoint's name)" : ''}`;
      else if (owner.kinds & (ID | SHORT)) found = `${where(key)} endpoint "${holder}" as its id (an id, and its first ${SHORT_ID_LENGTH} characters, answer as names too)`;
      else found = `${where(key)} endpoint "${holder}" as an alias (an endpoint's own name must be unique)`;
    } else if (records.has(key)) {
      found = `${where(key)} a static record`;
    }
  });
  return found ?? problems[0];
}

/** The endpoints other than `except` that hold `key`, with the kinds they hold it as. */
function holdersOf(names: IndexWriter, key: string, except: number): Array<{ endpoint: number; kinds: number }> {
  const k = names.find(key);
  const held: Array<{ endpoint: number; kinds: number }> = [];
  if (k >= 0) names.forEachHolder(k, (endpoint, kinds) => { if (endpoint !== except) held.push({ endpoint, kinds }); });
  return held;
}
