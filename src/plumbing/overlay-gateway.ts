// The distributed gateway of an overlay network: every host's bridge of the network answers as the
// same gateway, with the same address (the subnet's first) and this MAC, so an endpoint's gateway
// is always on its own host and no traffic crosses hosts to leave the network.

/** The gateway MAC of an overlay network: locally administered, unicast, the VXLAN id in its last three bytes. */
export function gatewayMac(vni: number): string {
  return [0x02, 0x6f, 0x76, (vni >> 16) & 0xff, (vni >> 8) & 0xff, vni & 0xff].map((b) => b.toString(16).padStart(2, '0')).join(':');
}
