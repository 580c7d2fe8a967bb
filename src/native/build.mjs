// Builds the optional native helpers when a C compiler is there (src/native/*.c → dist/src/native/):
//   nsdns-bind   binds 127.0.0.11:53 inside a namespace (else: nsenter + a Node helper)
//   nsdns-links  link work inside a namespace over netlink (else: nsenter + ip -batch)
//   nsdns-probe  runs the health probes in one epoll loop (else: the daemon's own Node prober)
// Without them nsdns works the same, only slower to connect and dearer to probe; a failure here is
// reported and never fails the install. NSDNS_NATIVE=0 skips the build (and, at run time, the use) of all.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cc = process.env.CC || 'cc';
const outDir = fileURLToPath(new URL('../../dist/src/native/', import.meta.url));
const fallback = { 'nsdns-bind': 'namespaces are bound through the Node helper', 'nsdns-links': 'link work inside namespaces goes through nsenter + ip',
  'nsdns-probe': 'health probes run in the daemon (the Node prober)' };

if (process.env.NSDNS_NATIVE === '0') {
  console.log('nsdns: NSDNS_NATIVE=0, native helpers not built');
} else {
  mkdirSync(outDir, { recursive: true });
  for (const [name, instead] of Object.entries(fallback)) {
    try {
      const source = fileURLToPath(new URL(`./${name}.c`, import.meta.url));
      execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-o', `${outDir}${name}`, source], { stdio: ['ignore', 'inherit', 'inherit'] });
    } catch (err) {
      console.log(`nsdns: no native ${name} (${err.code === 'ENOENT' ? `no C compiler "${cc}"` : err.message.split('\n')[0]}); ${instead}`);
    }
  }
}
