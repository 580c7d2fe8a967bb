// The seam between the DNS side of egress by name and its enforcement: the resolver hands the
// addresses of each allowed answer to a learner and holds the reply until they are in the kernel,
// so the client's first connection never races the rule. The firewall's learned sets implement it.
//
// `key` is the namespace the policy belongs to, as the namespace listener knows it: the path the
// endpoints name (/run/netns/NAME, /proc/PID/ns/net), the registry's key for the namespace
// (Endpoint.netns, Snapshot.namespaces()).

/** Where the addresses of allowed answers go (the firewall's learned sets). */
export interface EgressLearner {
  /**
   * Opens `addresses` (IPv4/IPv6 text) for the namespace `key` for `ttlSeconds` (the answer's TTL
   * plus the grace). Resolves once the kernel has them: the reply is held until then. Undefined
   * when there is nothing to wait for (all open already, written within the call, or the namespace
   * is not governed): the reply goes at once, as an answer without a policy does.
   */
  learn(key: string, addresses: readonly string[], ttlSeconds: number): Promise<void> | undefined;
}
