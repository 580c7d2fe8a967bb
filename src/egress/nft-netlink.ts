// Learned addresses straight into the kernel's nftables sets over nfnetlink: one batch
// (BATCH_BEGIN, one NFT_MSG_NEWSETELEM per set, BATCH_END) per write, sent on one socket the daemon
// keeps. The nft program cannot do this cheaply: before every command it refreshes its cache of
// the host's whole ruleset (one dump per interval set, in any table), so an update through nft
// costs more the more rules the host has. A batch is one transaction: all of its elements reach
// the kernel or none do.
//
// The kernel handles a batch within the send: its acknowledgement is queued before the send
// returns. So a write is sent and acknowledged synchronously, on the socket's own file descriptor
// (write, then read): two system calls, and the answer waits for nothing else. Through the netlink
// package's send it took five or so (a poll change, a timer, a wake-up, a read), and on a loaded
// virtual machine system calls are most of what a learned address costs. The package gives no
// descriptor: it is found by the socket's port in /proc/net/netlink. Without it (or should a read
// find nothing), acknowledgements arrive through the package's poll as before.
//
// Only learned elements go this way; tables, chains, sets and rules are written by nft, which
// parses and checks them. An element already in the set is refreshed: each add carries its
// expiration besides its timeout, and an add without NLM_F_EXCL updates both (Linux 6.10 and later).
// Older kernels leave an element already there as it was; the firewall then marks it `replace`,
// and the batch deletes it before adding it again: one transaction, never absent in between.
import { readdirSync, readFileSync, readlinkSync, readSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import ipaddr from 'ipaddr.js';
import { NsdnsError } from '../errors.js';

// Stable kernel ABI: linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h.
const NETLINK_NETFILTER = 12;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_CREATE = 0x400;
const NLA_F_NESTED = 0x8000;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
const NFPROTO_INET = 1;
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_TIMEOUT = 4;
const NFTA_SET_ELEM_EXPIRATION = 5;
const NFTA_DATA_VALUE = 1;
const NLMSGHDR = 16;
const NFGENMSG = 4;

/** The socket's receive buffer: acknowledgements of a busy turn must not overflow it (ENOBUFS). */
const RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024;
/** How long the kernel may take to answer a batch before its callers are rejected. */
const REPLY_TIMEOUT_MS = 10_000;
/** How often batches are checked against that limit (one timer for all, not one per batch). */
const REPLY_SWEEP_MS = 1_000;
/**
 * Bytes read per message. An acknowledgement is 36 bytes; a refusal echoes the refused message,
 * which may be longer and is then cut: its header, sequence number and errno come first.
 * Reading into a buffer this size spares a peek (one more system call) per message.
 */
const MESSAGE_BUFFER_BYTES = 4096;
/** Elements per batch: a netlink message must stay well under the socket's send buffer. */
export const ELEMENTS_PER_BATCH = 512;

/**
 * Addresses for one set, each in canonical text (as egress-rules' canonicalAddress gives it: one
 * family per set), with its timeout (`ttl`) in seconds, and `replace` where it is deleted first
 * in the same batch: the shape of a learned element.
 */
export interface SetWrite { set: string; elements: ReadonlyArray<{ address: string; ttl: number; replace?: boolean }> }

/**
 * A batch in flight: its messages' sequence numbers (delimiters too: the kernel may refuse those),
 * each set to 0 once answered (nextSeq never gives 0).
 */
interface Waiting { seqs: number[]; acksDue: number; resolve: () => void; reject: (err: Error) => void; due: number; settled: boolean }

type RawSocket = import('netlink').RawNetlinkSocket;

export class NftNetlink {
  private seq = 1;
  /** Per message sequence number, the batch waiting for its acknowledgement. */
  private readonly waiting = new Map<number, Waiting>();
  /**
   * The batch being written and read within one call (writeNow), matched before `waiting` and
   * kept out of it unless its acknowledgements come later: a map filled and emptied per learned
   * address would be rehashed at every one.
   */
  private inHand: Waiting | undefined;
  /** Batches in the package's send queue (the descriptor's buffer was full): later ones queue behind them, in order. */
  private queued = 0;
  /** Batches handed to the kernel (or its queue): transactions. */
  batchesSent = 0;
  private closed = false;
  /** Checks the batches in flight against REPLY_TIMEOUT_MS while there are any. */
  private sweeper: NodeJS.Timeout | undefined;
  /** The socket failed (closed by the binding on a poll error, or a send threw): nothing more goes through it. */
  broken = false;
  /** Where synchronous reads of acknowledgements land (one message each). */
  private readonly ack = Buffer.alloc(MESSAGE_BUFFER_BYTES);

  private constructor(private readonly socket: RawSocket, private fd: number | undefined) {
    const fromKernel = (msg: Buffer, rinfo: { port: number }) => {
      if (rinfo.port === 0) this.receive(msg);
    };
    socket.on('message', fromKernel);
    socket.on('truncatedMessage', fromKernel);
    socket.on('error', (err: Error) => this.fail(err));
    // Closed under us: the descriptor is no longer ours (its number may be given to another file).
    socket.on('close', () => {
      this.fd = undefined;
      if (!this.closed) this.fail(new Error('closed'));
    });
  }

  /** Whether writes are sent and acknowledged synchronously (the socket's descriptor was found). */
  get synchronous(): boolean {
    return this.fd !== undefined;
  }

  /** Opens the socket; undefined when this process cannot (no netlink binding, no permission). */
  static open(): { writer: NftNetlink } | { reason: string } {
    try {
      const netlink = createRequire(import.meta.url)('netlink') as typeof import('netlink');
      const socket = new netlink.RawNetlinkSocket(NETLINK_NETFILTER, { messagePeeking: false, msgBufferSize: MESSAGE_BUFFER_BYTES } as import('netlink').RawNetlinkSocketOptions);
      socket.unref();
      // Room for the acknowledgements of many namespaces' batches in one turn (capped by rmem_max).
      try {
        socket.setRecvBufferSize(RECEIVE_BUFFER_BYTES);
      } catch { /* the default then */ }
      return { writer: new NftNetlink(socket, descriptorOf(socket.address().port)) };
    } catch (err) {
      return { reason: err instanceof Error ? err.message.slice(0, 200) : 'unknown error' };
    }
  }

  /**
   * Adds elements with timeouts to sets of the inet table `table`, in transactions of at most
   * ELEMENTS_PER_BATCH elements. Resolves when the kernel has acknowledged every one; rejects with
   * the kernel's reason (ENOENT: no such table or set) if one was refused, ERR_EGRESS_FULL when a
   * set is at its size (ENFILE).
   */
  addElements(table: string, writes: readonly SetWrite[]): Promise<void> {
    const batches: SetWrite[][] = [];
    let current: SetWrite[] = [];
    let count = 0;
    for (const { set, elements } of writes) {
      for (let i = 0; i < elements.length; i += ELEMENTS_PER_BATCH) {
        const part = i === 0 && elements.length <= ELEMENTS_PER_BATCH ? elements : elements.slice(i, i + ELEMENTS_PER_BATCH);
        if (count + part.length > ELEMENTS_PER_BATCH && current.length > 0) {
          batches.push(current);
          current = [];
          count = 0;
        }
        current.push({ set, elements: part });
        count += part.length;
      }
    }
    if (current.length > 0) batches.push(current);
    const sent = (parts: readonly SetWrite[]) => new Promise<void>((resolve, reject) => this.sendBatch(table, parts, resolve, reject));
    if (batches.length === 1) return sent(batches[0]!);
    return Promise.all(batches.map(sent)).then(() => undefined);
  }

  /**
   * addElements, finished within the call where it can be (one batch, the descriptor known):
   * undefined when the kernel has them, its refusal (or the socket's failure) as an Error. A
   * promise otherwise, as addElements gives.
   */
  addElementsNow(table: string, writes: readonly SetWrite[]): Error | undefined | Promise<void> {
    let count = 0;
    for (const w of writes) count += w.elements.length;
    if (this.fd === undefined || count > ELEMENTS_PER_BATCH) return this.addElements(table, writes);
    let outcome: { err: Error | undefined } | undefined;
    let later: { resolve: () => void; reject: (err: Error) => void } | undefined;
    this.sendBatch(table, writes,
      () => (later === undefined ? (outcome = { err: undefined }) : later.resolve()),
      (err) => (later === undefined ? (outcome = { err }) : later.reject(err)));
    if (outcome !== undefined) return outcome.err;
    return new Promise<void>((resolve, reject) => {
      later = { resolve, reject };
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new NsdnsError('ERR_FIREWALL', 'the nftables netlink socket was closed'));
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.socket.close();
  }

  /** Sends one batch; `resolve` or `reject` is called once, within this call when it can be. */
  private sendBatch(table: string, parts: readonly SetWrite[], resolve: () => void, reject: (err: Error) => void): void {
    if (this.closed || this.broken) {
      reject(new NsdnsError('ERR_FIREWALL', 'the nftables netlink socket was closed'));
      return;
    }
    const messages = messageCount(parts);
    const seqs: number[] = [];
    for (let i = 0; i < messages + 2; i++) seqs.push(this.nextSeq());
    let batch: Buffer;
    try {
      batch = encodeBatch(table, parts, seqs);
    } catch (err) {
      reject(asError(err));
      return;
    }
    const entry: Waiting = { seqs, acksDue: messages, resolve, reject, due: performance.now() + REPLY_TIMEOUT_MS, settled: false };
    this.batchesSent++;
    const sent = this.fd === undefined || this.queued > 0 ? 'unsent' : this.writeNow(this.fd, batch, entry);
    if (sent === 'settled') return;
    for (const seq of seqs) if (seq !== 0) this.waiting.set(seq, entry);
    this.sweeper ??= setInterval(() => this.sweep(), REPLY_SWEEP_MS); // ref'd: an acknowledgement is awaited (the socket is unref'd)
    if (sent === 'pending') return;
    try {
      this.queued++;
      this.socket.send(batch, {}, (err) => {
        this.queued--;
        if (err !== undefined) this.settle(entry, new NsdnsError('ERR_FIREWALL', `sending learned addresses to the kernel: ${err.code ?? err.message}`));
      });
    } catch (err) {
      this.queued--;
      // The binding closed the socket after an error: every later send throws.
      this.fail(asError(err));
    }
  }

  /**
   * Sends `batch` on the descriptor and reads its acknowledgements at once: 'settled' when that
   * settled `entry` (or failed the socket), 'pending' when a read found nothing (not seen: the
   * kernel answers within the send; the rest then arrives through the package's poll), 'unsent'
   * when the send buffer was full (the package's queue waits for room). A read gives no sender,
   * unlike the package's receive: only a process with CAP_NET_ADMIN can send to a
   * NETLINK_NETFILTER socket, and such a process can change the rules themselves. The descriptor
   * stays ours while the socket is not broken or closed: the package closes it only after an
   * error it reports (which marks the socket broken first) or in close(), which says so.
   */
  private writeNow(fd: number, batch: Buffer, entry: Waiting): 'settled' | 'pending' | 'unsent' {
    try {
      writeSync(fd, batch);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'ENOBUFS') return 'unsent';
      this.fail(asError(err), entry);
      return 'settled';
    }
    this.inHand = entry;
    try {
      while (!entry.settled) {
        let length: number;
        try {
          length = readSync(fd, this.ack, 0, this.ack.length, null);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EINTR') return 'pending';
          // ENOBUFS (acknowledgements were lost) or worse: as the package's poll would, the socket fails.
          this.fail(asError(err), entry);
          return 'settled';
        }
        if (length === 0) return 'pending';
        this.receive(this.ack.subarray(0, length));
      }
      return 'settled';
    } finally {
      this.inHand = undefined;
    }
  }

  /**
   * Acknowledgements and errors; anything else on this socket is not ours and is ignored. A
   * message cut at MESSAGE_BUFFER_BYTES (a refusal echoing a long batch) still has its header and
   * errno: it is read, and nothing after it.
   */
  private receive(msg: Buffer): void {
    for (let at = 0; at + NLMSGHDR <= msg.length;) {
      const length = msg.readUInt32LE(at);
      if (length < NLMSGHDR) return;
      if (msg.readUInt16LE(at + 4) === NLMSG_ERROR && length >= NLMSGHDR + 4 && at + NLMSGHDR + 4 <= msg.length) {
        const seq = msg.readUInt32LE(at + 8);
        // 0 is never ours (nextSeq), and marks a number answered already.
        const inHand = this.inHand;
        const entry = seq === 0 ? undefined : inHand?.seqs.includes(seq) ? inHand : this.waiting.get(seq);
        if (entry !== undefined) {
          const errno = msg.readInt32LE(at + NLMSGHDR);
          // One answer per sequence number: another with the same number is not this batch's.
          entry.seqs[entry.seqs.indexOf(seq)] = 0;
          if (entry !== inHand) this.waiting.delete(seq);
          if (errno !== 0) this.settle(entry, refusal(errno));
          else if (--entry.acksDue === 0) this.settle(entry, undefined);
        }
      }
      at += (length + 3) & ~3;
    }
  }

  private settle(entry: Waiting, err: Error | undefined): void {
    if (entry.settled) return;
    entry.settled = true;
    for (const seq of entry.seqs) if (this.waiting.get(seq) === entry) this.waiting.delete(seq);
    if (err === undefined) entry.resolve();
    else entry.reject(err);
  }

  /** Rejects the batches the kernel has not answered within REPLY_TIMEOUT_MS (oldest first: sent in order). */
  private sweep(): void {
    // Stopped once nothing waits (not at every settle: most batches settle within a turn).
    if (this.waiting.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
      return;
    }
    const now = performance.now();
    for (const entry of this.waiting.values()) {
      if (entry.due > now) return;
      this.settle(entry, new NsdnsError('ERR_FIREWALL', 'the kernel did not acknowledge learned addresses in time'));
    }
  }

  /** The socket is no use any more: every batch waiting fails, and `inHand` (not in `waiting`) too. */
  private fail(err: Error, inHand?: Waiting): void {
    this.broken = true;
    this.failAll(new NsdnsError('ERR_FIREWALL', `the nftables netlink socket failed: ${err.message.slice(0, 200)}`), inHand);
  }

  private failAll(err: Error, inHand?: Waiting): void {
    if (inHand !== undefined) this.settle(inHand, err);
    for (const entry of new Set(this.waiting.values())) this.settle(entry, err);
  }

  private nextSeq(): number {
    this.seq = this.seq >= 0x7fffffff ? 1 : this.seq + 1;
    return this.seq;
  }
}

/**
 * The file descriptor of this process's NETLINK_NETFILTER socket bound to `port`: its inode from
 * /proc/net/netlink, then the descriptor that links to it. Undefined when either is not found.
 */
function descriptorOf(port: number): number | undefined {
  try {
    let inode: string | undefined;
    for (const line of readFileSync('/proc/net/netlink', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1] === String(NETLINK_NETFILTER) && f[2] === String(port)) inode = f[9];
    }
    if (inode === undefined) return undefined;
    for (const fd of readdirSync('/proc/self/fd')) {
      try {
        if (readlinkSync(`/proc/self/fd/${fd}`) === `socket:[${inode}]`) return Number(fd);
      } catch { /* closed meanwhile */ }
    }
  } catch { /* no /proc: the package's path */ }
  return undefined;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/** The kernel's refusal of a batch: ENFILE is a set at its size, told apart (ERR_EGRESS_FULL) so the caller can name the limit. */
function refusal(errno: number): NsdnsError {
  if (errno === -constants.errno.ENFILE) return new NsdnsError('ERR_EGRESS_FULL', 'the kernel refused learned addresses: a set is full (ENFILE)');
  return new NsdnsError('ERR_FIREWALL', `the kernel refused learned addresses: ${errnoName(errno)}`);
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(errno);
  } catch {
    return `errno ${-errno}`;
  }
}

/** Whether a part deletes some of its elements first (a DELSETELEM before its NEWSETELEM). */
function replaces(part: SetWrite): boolean {
  for (const e of part.elements) if (e.replace === true) return true;
  return false;
}

/** The messages of a batch between its delimiters: each acknowledged. */
function messageCount(parts: readonly SetWrite[]): number {
  let n = parts.length;
  for (const part of parts) if (replaces(part)) n++;
  return n;
}

/**
 * One batch in one buffer: BATCH_BEGIN, per part a DELSETELEM of its `replace` elements (if any)
 * and a NEWSETELEM of all of them (into inet `table`), BATCH_END, with `seqs` in that order.
 * Written in place: this runs for every allowed answer.
 */
function encodeBatch(table: string, parts: readonly SetWrite[], seqs: readonly number[]): Buffer {
  const listHead = NLMSGHDR + NFGENMSG + attrLength(table.length + 1) + 4;
  let size = 2 * DELIMITER;
  for (const part of parts) {
    size += listHead + attrLength(part.set.length + 1);
    for (const e of part.elements) size += ELEMENT + keyLength(e.address);
    if (!replaces(part)) continue;
    size += listHead + attrLength(part.set.length + 1);
    for (const e of part.elements) if (e.replace === true) size += KEY_ONLY + keyLength(e.address);
  }
  // From the shared pool (most batches are small), zeroed: padding and reserved fields are 0.
  const out = Buffer.allocUnsafe(size).fill(0);
  let at = delimiter(out, 0, NFNL_MSG_BATCH_BEGIN, seqs[0]!);
  let message = 1;
  for (const part of parts) {
    if (replaces(part)) at = elementList(out, at, table, part, NFT_MSG_DELSETELEM, seqs[message++]!);
    at = elementList(out, at, table, part, NFT_MSG_NEWSETELEM, seqs[message++]!);
  }
  delimiter(out, at, NFNL_MSG_BATCH_END, seqs[seqs.length - 1]!);
  return out;
}

/**
 * One NEWSETELEM of `part`'s elements with their timeouts, or a DELSETELEM of its `replace`
 * elements' keys, at `at`; returns where it ends.
 */
function elementList(out: Buffer, at: number, table: string, part: SetWrite, type: number, seq: number): number {
  const adding = type === NFT_MSG_NEWSETELEM;
  const start = at;
  at = header(out, at, (NFNL_SUBSYS_NFTABLES << 8) | type, NLM_F_REQUEST | NLM_F_ACK | (adding ? NLM_F_CREATE : 0), seq);
  out.writeUInt8(NFPROTO_INET, at);
  at += NFGENMSG;
  at = stringAttr(out, at, NFTA_SET_ELEM_LIST_TABLE, table);
  at = stringAttr(out, at, NFTA_SET_ELEM_LIST_SET, part.set);
  const list = at;
  at += 4;
  for (const { address, ttl, replace } of part.elements) {
    if (!adding && replace !== true) continue;
    const elem = at;
    const bytes = keyLength(address);
    at += 4;
    at = nestHeader(out, at, NFTA_SET_ELEM_KEY, 8 + bytes);
    out.writeUInt16LE(4 + bytes, at);
    out.writeUInt16LE(NFTA_DATA_VALUE, at + 2);
    writeAddress(out, at + 4, address);
    at += 4 + bytes;
    if (adding) {
      // The timeout, and the expiration set to it: an element already in the set keeps its
      // expiration when only a timeout equal to its own is given (Linux 6.10 and later update
      // what is given), so an address answered again would expire as its first answer did.
      at = millisecondsAttr(out, at, NFTA_SET_ELEM_TIMEOUT, ttl * 1000);
      at = millisecondsAttr(out, at, NFTA_SET_ELEM_EXPIRATION, ttl * 1000);
    }
    nestHeader(out, elem, NFTA_LIST_ELEM, at - elem);
  }
  nestHeader(out, list, NFTA_SET_ELEM_LIST_ELEMENTS, at - list);
  out.writeUInt32LE(at - start, start);
  return at;
}

/** A batch delimiter: AF_UNSPEC, version 0, the subsystem in res_id (big-endian). */
const DELIMITER = NLMSGHDR + NFGENMSG;
/** An element's bytes besides its key: list entry, key nest, value, timeout and expiration attributes. */
const ELEMENT = 4 + 4 + 4 + 12 + 12;
/** The same in a delete: list entry, key nest, value. */
const KEY_ONLY = 4 + 4 + 4;

const attrLength = (payload: number) => 4 + ((payload + 3) & ~3);

const keyLength = (address: string) => (address.includes(':') ? 16 : 4);

/** A canonical address's bytes in network order at `at`; a dotted quad without a parser (one per answer). */
function writeAddress(out: Buffer, at: number, address: string): void {
  if (address.includes(':')) {
    out.set(ipaddr.IPv6.parse(address).toByteArray(), at);
    return;
  }
  let octet = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 46) {
      out[at++] = octet;
      octet = 0;
    } else octet = octet * 10 + c - 48;
  }
  out[at] = octet;
}

function delimiter(out: Buffer, at: number, type: number, seq: number): number {
  header(out, at, type, NLM_F_REQUEST, seq);
  out.writeUInt32LE(DELIMITER, at);
  out.writeUInt16BE(NFNL_SUBSYS_NFTABLES, at + NLMSGHDR + 2);
  return at + DELIMITER;
}

/** A netlink header at `at` (its length written by the caller once known). */
function header(out: Buffer, at: number, type: number, flags: number, seq: number): number {
  out.writeUInt16LE(type, at + 4);
  out.writeUInt16LE(flags, at + 6);
  out.writeUInt32LE(seq, at + 8);
  return at + NLMSGHDR;
}

/** Milliseconds as a big-endian u64 attribute; timeouts are at most a week, so the high half is 0. */
function millisecondsAttr(out: Buffer, at: number, type: number, ms: number): number {
  out.writeUInt16LE(12, at);
  out.writeUInt16LE(type, at + 2);
  out.writeUInt32BE(Math.floor(ms / 0x1_0000_0000), at + 4);
  out.writeUInt32BE(ms % 0x1_0000_0000, at + 8);
  return at + 12;
}

function nestHeader(out: Buffer, at: number, type: number, length: number): number {
  out.writeUInt16LE(length, at);
  out.writeUInt16LE(type | NLA_F_NESTED, at + 2);
  return at + 4;
}

/** A NUL-terminated name (validated before: letters, digits and "_"). */
function stringAttr(out: Buffer, at: number, type: number, text: string): number {
  out.writeUInt16LE(4 + text.length + 1, at);
  out.writeUInt16LE(type, at + 2);
  out.write(text, at + 4, 'latin1');
  return at + attrLength(text.length + 1);
}
