import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A temporary directory removed by the returned cleanup. */
export function tempDir(prefix = 'nsdns-test-'): { dir: string; cleanup: () => void; write: (name: string, content: string | Uint8Array) => string } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return {
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
    // Written atomically, as the README tells people to do.
    write: (name, content) => {
      const file = path.join(dir, name);
      writeFileSync(`${file}.tmp~`, content);
      renameSync(`${file}.tmp~`, file);
      return file;
    },
  };
}
