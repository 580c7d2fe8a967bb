// One A query over UDP to a server (this host's loopback unless told), as the bench scripts poll names.
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface Answer {
  rcode?: string;
  /** The first answer's data (an address for A). */
  data?: string;
}

/** The answer to `name`, or undefined when none came within 500 ms. */
export function askA(port: number, name: string, host = '127.0.0.1'): Promise<Answer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => { s.close(); resolve(undefined); }, 500);
    s.on('message', (m) => {
      clearTimeout(timer);
      s.close();
      const p = dnsPacket.decode(m) as dnsPacket.Packet & { rcode?: string };
      resolve({ rcode: p.rcode, data: (p.answers?.[0] as { data?: string } | undefined)?.data });
    });
    s.send(dnsPacket.encode({ type: 'query', id: 7, questions: [{ name, type: 'A', class: 'IN' }] }), port, host);
  });
}
