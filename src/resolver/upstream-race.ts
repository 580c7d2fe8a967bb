// One question asked of the upstream servers, in their order (healthy ones first). The next server
// is asked as soon as one fails or gives no usable answer, and early, while that one still waits,
// once it is slower than its hedge delay (UpstreamHealth.hedgeDelay: a few of its usual round
// trips): a dead or slow first server costs the client that delay, not its timeout. This is a
// hedged request (Dean and Barroso, "The Tail at Scale"), with the wait sized from the server's
// RTT as Unbound sizes its retransmissions. The first usable answer wins. Exchanges still waiting
// then run on to their own end: a late answer is dropped but tells health the server lives and how
// long it took; a timeout there makes the server known dead, since another one answered.
import { errorMessage } from '../errors.js';
import type { Outcome, ServerStats } from './forwarder.js';
import type { UpstreamHealth } from './health.js';
import type { UpstreamServer } from './upstream-address.js';
import { UpstreamTimeout, type SlowWatch, type Transport } from './upstream.js';

/** A reply as the forwarder judges it: the answer, or why not (with a reply to give if none is better). */
export type Verdict =
  | { final: true; outcome: Outcome }
  | { final: false; fallback: Outcome | undefined; problem: string };

/** What a race needs from its forwarder. */
export interface RaceRules {
  readonly health: UpstreamHealth;
  /** How long to wait for this server before the next one is asked too. */
  hedgeDelay(server: UpstreamServer): number;
  /** The server's counters while metrics are on, else undefined. */
  counted(server: UpstreamServer): ServerStats | undefined;
  /** One exchange with one server for this race's question. */
  ask(race: UpstreamRace, server: UpstreamServer, watch: SlowWatch | undefined): Promise<Buffer>;
  judge(race: UpstreamRace, reply: Buffer, server: UpstreamServer): Verdict;
  /** Exchanges going on after the race was decided (+n), or ending then (-1). */
  lingering(delta: number): void;
}

export class UpstreamRace implements SlowWatch {
  /** For the exchange asked last: when it counts as slow (read by the exchange as it starts). */
  afterMs = 0;
  readonly outcome: Promise<Outcome>;
  private resolve!: (outcome: Outcome) => void;
  private next = 0;
  /** Servers asked and not heard from yet, in the order asked. */
  private readonly waiting: UpstreamServer[] = [];
  private decided = false;
  private won = false;
  private fallback: Outcome | undefined;
  private problems: string[] | undefined;

  constructor(
    private readonly rules: RaceRules,
    private readonly servers: readonly UpstreamServer[],
    readonly sent: Buffer,
    readonly questionEnd: number,
    readonly transport: Transport,
    readonly deadline: number,
    readonly cacheKey: string,
    readonly client: string,
  ) {
    this.outcome = new Promise((resolve) => { this.resolve = resolve; });
    if (!this.askNext()) this.end();
  }

  /** The exchange asked last is slow: the next server is asked too. */
  slow(): void {
    if (!this.decided) this.askNext();
  }

  /** Asks the next server that may be asked; false when none is left (or no time). */
  private askNext(): boolean {
    const health = this.rules.health;
    while (this.next < this.servers.length) {
      if (this.deadline - Date.now() <= 0) return false;
      const server = this.servers[this.next++];
      if (health.mayAsk(server.key)) {
        this.launch(server);
        return true;
      }
      this.note(`${server.key}: known dead, not asked until its next probe`);
    }
    return false;
  }

  private launch(server: UpstreamServer): void {
    const counted = this.rules.counted(server);
    if (counted) counted.queries++;
    this.waiting.push(server);
    // Watched only while a later server could still be asked.
    let watch: SlowWatch | undefined;
    if (this.next < this.servers.length) {
      this.afterMs = this.rules.hedgeDelay(server);
      watch = this;
    }
    const started = performance.now();
    this.rules.ask(this, server, watch).then(
      (reply) => this.heard(server, performance.now() - started, counted, reply),
      (err: unknown) => this.lost(server, counted, err),
    );
  }

  private heard(server: UpstreamServer, ms: number, counted: ServerStats | undefined, reply: Buffer): void {
    this.waiting.splice(this.waiting.indexOf(server), 1);
    counted?.latency.observe(ms / 1000);
    this.rules.health.succeeded(server.key, ms);
    if (this.decided) {
      this.rules.lingering(-1);
      return;
    }
    let verdict: Verdict;
    try {
      verdict = this.rules.judge(this, reply, server);
    } catch (err) {
      // Inside a promise callback: a throw here would be an unhandled rejection, and the race would never end.
      verdict = { final: false, fallback: undefined, problem: `${server.key}: ${errorMessage(err)}` };
    }
    if (verdict.final) {
      this.win(server, verdict.outcome);
      return;
    }
    if (counted) counted.failures++;
    this.fallback ??= verdict.fallback;
    this.note(verdict.problem);
    this.onward();
  }

  private lost(server: UpstreamServer, counted: ServerStats | undefined, err: unknown): void {
    this.waiting.splice(this.waiting.indexOf(server), 1);
    if (counted) {
      if (err instanceof UpstreamTimeout) counted.timeouts++;
      else counted.failures++;
    }
    if (this.decided) {
      // Only a won race leaves exchanges waiting: another server answered this question.
      this.rules.health.failed(server.key, this.won);
      this.rules.lingering(-1);
      return;
    }
    this.rules.health.failed(server.key);
    this.note(`${server.key}: ${errorMessage(err)}`);
    this.onward();
  }

  /** After a server gave nothing usable: the next one, unless another is still being waited for. */
  private onward(): void {
    if (this.waiting.length > 0 || this.askNext()) return;
    this.end();
  }

  private win(winner: UpstreamServer, outcome: Outcome): void {
    this.decided = this.won = true;
    if (this.waiting.length > 0) {
      // Those asked before the winner were outrun: the back of the line until they answer.
      const at = this.servers.indexOf(winner);
      for (const s of this.waiting) if (this.servers.indexOf(s) < at) this.rules.health.outrun(s.key);
      this.rules.lingering(this.waiting.length);
    }
    this.resolve(outcome);
  }

  /** Nothing usable from any server: the first fallback (REFUSED, SERVFAIL), else no reply. */
  private end(): void {
    this.decided = true;
    const reason = this.problems ? this.problems.join('; ') : 'no time left';
    this.resolve(this.fallback ?? { reply: undefined, origin: { source: 'error', reason } });
  }

  private note(problem: string): void {
    (this.problems ??= []).push(problem);
  }
}
