// What each namespace under an egress policy asked lately: a bounded ring of decisions per
// namespace (name, allowed or denied, when), for `nsdns egress log`. No addresses: the firewall
// side says what it opened. A decision costs no allocation once a namespace's ring is full.

/** Decisions kept per namespace: the newest replace the oldest. */
export const DECISIONS_PER_NAMESPACE = 256;
/** Namespaces with a ring; the oldest ring makes room (namespaces come from the registry: this is a backstop). */
const MAX_NAMESPACES = 4096;

export interface Decision {
  /** ISO time. */
  time: string;
  /** As asked, in presentation form (wire/query.ts escapes what is not printable). */
  name: string;
  allowed: boolean;
}

class Ring {
  private readonly names: string[] = [];
  private readonly times: number[] = [];
  private readonly allowed: boolean[] = [];
  private next = 0;

  add(name: string, allowed: boolean, time: number): void {
    this.names[this.next] = name;
    this.times[this.next] = time;
    this.allowed[this.next] = allowed;
    this.next = (this.next + 1) % DECISIONS_PER_NAMESPACE;
  }

  /** Oldest first. */
  list(): Decision[] {
    const n = this.names.length;
    const start = n < DECISIONS_PER_NAMESPACE ? 0 : this.next;
    const out: Decision[] = [];
    for (let i = 0; i < n; i++) {
      const at = (start + i) % n;
      out.push({ time: new Date(this.times[at]).toISOString(), name: this.names[at], allowed: this.allowed[at] });
    }
    return out;
  }
}

export class DecisionLog {
  private readonly rings = new Map<string, Ring>();

  record(netns: string, name: string, allowed: boolean): void {
    let ring = this.rings.get(netns);
    if (ring === undefined) {
      if (this.rings.size >= MAX_NAMESPACES) this.rings.delete(this.rings.keys().next().value!);
      ring = new Ring();
      this.rings.set(netns, ring);
    }
    ring.add(name, allowed, Date.now());
  }

  /** The decisions of `netns`, oldest first (none yet: empty). */
  of(netns: string): Decision[] {
    return this.rings.get(netns)?.list() ?? [];
  }

  /** Forgets namespaces no longer under a policy. */
  retain(keep: (netns: string) => boolean): void {
    for (const netns of this.rings.keys()) if (!keep(netns)) this.rings.delete(netns);
  }
}
