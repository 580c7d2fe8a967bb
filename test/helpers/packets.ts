// Queries built with dns-packet, for tests that feed the wire layer and the resolver directly.
import dnsPacket from 'dns-packet';

export function queryPacket(name: string, type: dnsPacket.RecordType = 'A', options: { id?: number; edns?: { udpSize?: number; do?: boolean }; flags?: number } = {}): Buffer {
  const additionals: dnsPacket.Answer[] = options.edns
    ? [{ type: 'OPT', name: '.', udpPayloadSize: options.edns.udpSize ?? 1232, flags: options.edns.do ? dnsPacket.DNSSEC_OK : 0 } as dnsPacket.Answer]
    : [];
  return dnsPacket.encode({
    type: 'query', id: options.id ?? 4242, flags: options.flags ?? dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }], additionals,
  });
}

export function decode(buf: Buffer): dnsPacket.Packet & { rcode?: string } {
  return dnsPacket.decode(buf) as dnsPacket.Packet & { rcode?: string };
}

/** The data of a record, whatever its type. */
export function dataOf(record: dnsPacket.Answer): unknown {
  return (record as { data?: unknown }).data;
}
