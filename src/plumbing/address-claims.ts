// Where an overlay network's addresses come from when the cluster allocates them (one address,
// one holder, across every host): the network manager claims an endpoint's IPv4 address here
// before its link is made, and gives it back when the endpoint goes or the connect fails. Without
// one, the local allocator (planner.ts) decides, as for every other network.

export interface AddressClaims {
  /** Claims an address of `subnet` on `network` for this node: `ip` given → that one (or an ERR_CONFLICT naming its holder); else the first free one, skipping `reserved`. */
  claim(network: string, subnet: string, options: { ip?: string; reserved?: readonly string[] }): Promise<string>;
  /** Gives it back (disconnect, failed connect). Idempotent. */
  release(network: string, ip: string): Promise<void>;
}
