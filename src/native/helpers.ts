// Where the optional native helpers are (build.mjs compiles them into dist/src/native/, beside this
// file) and whether one may be used: it was built, and NSDNS_NATIVE=0 does not switch it off. Not a
// layer of its own: any layer that has a native fast path asks here.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type NativeHelper = 'nsdns-bind' | 'nsdns-links' | 'nsdns-probe';

export function nativeHelperPath(name: NativeHelper): string {
  return fileURLToPath(new URL(`./${name}`, import.meta.url));
}

export function nativeHelperUsable(path: string): boolean {
  return process.env.NSDNS_NATIVE !== '0' && existsSync(path);
}
