// One client asking many distinct names over UDP from one socket: all at once (`everyMs` 0) or
// paced. No retries: each query's reply, its rcode and addresses, and how long after its own send
// it came. Gives up on what is still unanswered after `waitMs`, so a test can say what was lost.
import dgram from 'node:dgram';
import { dataOf, decode, queryPacket } from './packets.js';

export interface BurstReply {
  name: string;
  rcode: string;
  addresses: string[];
  ms: number;
}

export interface BurstResult {
  replies: BurstReply[];
  /** Names no reply came for within `waitMs` of the last send. */
  unanswered: string[];
}

export async function askAll(host: string, port: number, names: readonly string[], options: { everyMs?: number; waitMs: number; source?: string }): Promise<BurstResult> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, options.source ?? '127.0.0.1', resolve));
  const sentAt = new Map<number, { name: string; at: number }>();
  const replies: BurstReply[] = [];
  try {
    return await new Promise<BurstResult>((resolve) => {
      let giveUp: NodeJS.Timeout | undefined;
      let finished = false;
      const done = () => {
        clearTimeout(giveUp);
        finished = true;
        resolve({ replies, unanswered: [...sentAt.values()].map((s) => s.name) });
      };
      socket.on('message', (msg) => {
        const id = msg.readUInt16BE(0);
        const asked = sentAt.get(id);
        if (!asked) return;
        sentAt.delete(id);
        const p = decode(msg);
        replies.push({ name: asked.name, rcode: p.rcode ?? 'NOERROR', addresses: (p.answers ?? []).filter((a) => a.type === 'A').map((a) => String(dataOf(a))), ms: performance.now() - asked.at });
        if (replies.length === names.length) done();
      });
      let i = 0;
      const sendNext = () => {
        do {
          const id = i + 1;
          sentAt.set(id, { name: names[i], at: performance.now() });
          socket.send(queryPacket(names[i], 'A', { id }), port, host);
          i++;
        } while (i < names.length && !options.everyMs);
        if (i < names.length) setTimeout(sendNext, options.everyMs);
        else if (!finished) giveUp = setTimeout(done, options.waitMs);
      };
      sendNext();
    });
  } finally {
    socket.close();
  }
}
