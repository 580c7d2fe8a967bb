// The DNS side of egress by name, as the resolver asks it for a namespace under a policy: may this
// name be answered from outside (each decision counted per network and kept in the decision log),
// the reply to a name that may not (NXDOMAIN with Extended DNS Error 15 "Blocked", RFC 8914), and
// an allowed reply's release, held until the learner has opened its addresses (SERVFAIL when it
// could not, with an Extended DNS Error when the namespace holds its limit of open addresses).
// Namespaces without a policy never reach this module: the resolver tests one precomputed value
// per listener.
import { NsdnsError } from '../errors.js';
import { rateLimited, type Logger } from '../log.js';
import { answerAddresses } from '../wire/answer-addresses.js';
import { RCODE } from '../wire/constants.js';
import type { Query } from '../wire/query.js';
import { EDE_CODE, errorReply, extendedError } from '../wire/reply.js';
import { DecisionLog } from './decision-log.js';
import type { EgressLearner } from './learner.js';
import type { EgressPolicy } from './policy.js';

/** The egress policy of one namespace, as its listener gives it (recomputed on registry changes). */
export interface NamespaceEgress {
  /** The namespace's path (/run/netns/NAME, /proc/PID/ns/net): the learner's key and the decision log's. */
  readonly key: string;
  readonly policy: EgressPolicy;
  /** The networks of its endpoints that are under a policy: where /metrics counts its decisions. */
  readonly networks: readonly string[];
}

export interface EgressSettings {
  /** Added to an answer's TTL for as long as its addresses stay open (config egress.grace). */
  graceSeconds: number;
  /** One JSON line per decision in the daemon's log (config egress.logDecisions). */
  logDecisions: boolean;
}

export const DEFAULT_EGRESS_SETTINGS: EgressSettings = { graceSeconds: 30, logDecisions: false };

/** RFC 8914 §4.16: Blocked, "the resolver's operator policy"; built once. */
const BLOCKED = extendedError(EDE_CODE.BLOCKED, 'blocked by egress policy');
/**
 * RFC 8914 §4.1: Other, with a text. The name is allowed, so Blocked (§4.16: the domain is blocked)
 * would misstate it; no registered code says that a local limit was reached, and the same name
 * answers again once enough of the namespace's addresses expire.
 */
const FULL = extendedError(EDE_CODE.OTHER, 'egress: too many open addresses');

export interface EgressCounts {
  allowed: number;
  denied: number;
}

export class EgressGate {
  /** Where allowed answers' addresses go; none until the firewall's is wired: names are filtered, nothing is opened. */
  learner: EgressLearner | undefined;
  readonly decisions = new DecisionLog();
  /** Decisions per network (bounded: networks come from the registry). */
  readonly counts = new Map<string, EgressCounts>();
  /** Allowed answers whose addresses could not be learned: answered SERVFAIL. */
  learnFailures = 0;
  /** Those of them refused because their namespace held its limit of open addresses (egress.maxLearned). */
  learnFull = 0;
  private readonly warnLearn = rateLimited(10_000);
  /** Apart: a namespace at its limit must not hide the other failures' warnings. */
  private readonly warnFull = rateLimited(10_000);

  constructor(private settings: EgressSettings, private readonly log: Logger) {}

  configure(settings: EgressSettings): void {
    this.settings = settings;
  }

  /** Whether `query`'s name may be answered from outside; the decision is counted and logged. */
  allows(ns: NamespaceEgress, query: Query): boolean {
    const allowed = ns.policy.allows(query.name);
    this.note(ns, query, allowed);
    return allowed;
  }

  /**
   * Whether `query`'s name, allowed when it was asked, is allowed still (the policy changed while
   * its answer was on its way). Only a name no longer allowed is counted and logged: denied.
   */
  stillAllows(ns: NamespaceEgress, query: Query): boolean {
    if (ns.policy.allows(query.name)) return true;
    this.note(ns, query, false);
    return false;
  }

  private note(ns: NamespaceEgress, query: Query, allowed: boolean): void {
    this.decisions.record(ns.key, query.qname, allowed);
    for (const network of ns.networks) {
      let counts = this.counts.get(network);
      if (counts === undefined) this.counts.set(network, (counts = { allowed: 0, denied: 0 }));
      if (allowed) counts.allowed++;
      else counts.denied++;
    }
    if (this.settings.logDecisions) this.log.info({ netns: ns.key, name: query.qname, allowed }, 'egress decision');
  }

  /** NXDOMAIN, with EDE 15 when the client sent EDNS (RFC 8914 rides in the OPT record). */
  deniedReply(query: Query, recursionAvailable: boolean, maxUdpSize: number): Buffer {
    return errorReply(query, RCODE.NXDOMAIN, recursionAvailable, maxUdpSize, BLOCKED);
  }

  /**
   * `reply` to an allowed name, released once its addresses (the CNAME chain's from the asked
   * name included) are open for their TTL plus the grace; SERVFAIL when that fails: the client is
   * never told an address it could not reach (fail closed).
   */
  release(ns: NamespaceEgress, query: Query, reply: Buffer | null, maxUdpSize: number): Buffer | null | Promise<Buffer | null> {
    const learner = this.learner;
    if (learner === undefined || reply === null) return reply;
    const found = answerAddresses(reply, query.questionEnd, query.name);
    if (found === undefined) return reply;
    const learning = learner.learn(ns.key, found.addresses, found.ttl + this.settings.graceSeconds);
    if (learning === undefined) return reply;
    return learning.then(() => reply, (err: unknown) => this.unlearned(ns, query, err, maxUdpSize));
  }

  private unlearned(ns: NamespaceEgress, query: Query, err: unknown, maxUdpSize: number): Buffer {
    this.learnFailures++;
    if (err instanceof NsdnsError && err.code === 'ERR_EGRESS_FULL') {
      this.learnFull++;
      this.warnFull((suppressed) => this.log.warn({ err, netns: ns.key, suppressed }, 'egress: a namespace holds its limit of open addresses; answered SERVFAIL'));
      return errorReply(query, RCODE.SERVFAIL, true, maxUdpSize, FULL);
    }
    this.warnLearn((suppressed) => this.log.warn({ err, netns: ns.key, suppressed }, 'egress: could not open the addresses of an allowed answer; answered SERVFAIL'));
    return errorReply(query, RCODE.SERVFAIL, true, maxUdpSize);
  }
}
