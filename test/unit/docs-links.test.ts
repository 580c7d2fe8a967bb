// Every relative link in the READMEs and the pages under docs/ leads somewhere: to a file or folder
// of the repository, and, when it names an #anchor, to a heading of that page. Pages move and
// headings get renamed; a link that silently leads nowhere is what this catches.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../helpers/daemon.js';

/** README.md, bench/README.md and every Markdown file under docs/, as paths relative to the repository root. */
function pages(): string[] {
  const found = ['README.md', 'bench/README.md'];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(path.join(ROOT, dir))) {
      const rel = path.join(dir, entry);
      if (statSync(path.join(ROOT, rel)).isDirectory()) walk(rel);
      else if (entry.endsWith('.md')) found.push(rel);
    }
  };
  walk('docs');
  return found;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as '-', repeats numbered. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) inFence = !inFence;
    const m = inFence ? null : /^#{1,6}\s+(.*?)\s*#*$/.exec(line);
    if (!m) continue;
    const slug = m[1].toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

/** The targets of inline links and images, outside code blocks and code spans. */
function links(markdown: string): string[] {
  const prose = markdown.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
  return [...prose.matchAll(/!?\[[^\]]*\]\(([^)\s]+)\)/g)].map((m) => m[1]);
}

describe('documentation links', () => {
  for (const page of pages()) {
    it(`${page}: every relative link and #anchor exists`, () => {
      const text = readFileSync(path.join(ROOT, page), 'utf8');
      const broken: string[] = [];
      for (const link of links(text)) {
        if (/^[a-z]+:/i.test(link)) continue; // https:, mailto: ...: not ours to check
        const [file, anchor] = link.split('#');
        const target = file ? path.join(ROOT, path.dirname(page), file) : path.join(ROOT, page);
        if (!existsSync(target)) { broken.push(`${link} (no such file)`); continue; }
        if (anchor !== undefined && !anchors(readFileSync(target, 'utf8')).has(anchor)) broken.push(`${link} (no such heading)`);
      }
      assert.deepEqual(broken, []);
    });
  }
});
