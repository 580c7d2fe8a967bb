// Endpoint ids as names: an id of hex digits answers as a name, by itself and by its first 12
// characters (Docker's short id). Here apart from document.ts so the packed index can use it too.
import { createHash } from 'node:crypto';

export const SHORT_ID_LENGTH = 12;

/**
 * Hex ids this long or longer (Docker's ids, and the ids derived below) are found by their short id
 * and checked against the endpoint, not indexed whole: no name or alias can be that long (a label
 * holds at most 63), so nothing else can share the key, and a packed network does not pay 64 bytes of
 * index per endpoint.
 */
export const LONG_ID_LENGTH = 64;

const HEX_ID = /^[0-9a-f]{12,}$/;

/** A stable id derived from a name, for hand-written files that give none (hex, like Docker's). */
export function derivedId(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex');
}

/** An id in the form names are compared in (lower case). */
export function idKey(id: string): string {
  return /[A-F]/.test(id) ? id.toLowerCase() : id;
}

/** Whether a (lower-case) id answers as a name: 12 or more hex digits. */
export function isNameId(id: string): boolean {
  return HEX_ID.test(id);
}

/** Whether a lower-case key is a long id, looked up by its short id (LONG_ID_LENGTH). */
export function isLongId(key: string): boolean {
  return key.length >= LONG_ID_LENGTH && HEX_ID.test(key);
}
