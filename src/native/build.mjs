// Builds the optional native bind helper (src/native/nsdns-bind.c → dist/src/native/nsdns-bind)
// when a C compiler is there. Without one nsdns works the same, binding through a Node helper;
// so a failure here is reported and never fails the install.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = fileURLToPath(new URL('./nsdns-bind.c', import.meta.url));
const output = fileURLToPath(new URL('../../dist/src/native/nsdns-bind', import.meta.url));
const cc = process.env.CC || 'cc';
if (process.env.NSDNS_NATIVE === '0') {
  console.log('nsdns: NSDNS_NATIVE=0, native bind helper not built');
} else {
  try {
    mkdirSync(fileURLToPath(new URL('../../dist/src/native/', import.meta.url)), { recursive: true });
    execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-o', output, source], { stdio: ['ignore', 'inherit', 'inherit'] });
    // nsdns-links: link work inside namespaces over netlink (src/plumbing/links.ts; else nsenter + ip).
    execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-o', output.replace(/nsdns-bind$/, 'nsdns-links'), source.replace(/nsdns-bind\.c$/, 'nsdns-links.c')], { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (err) {
    console.log(`nsdns: no native bind helper (${err.code === 'ENOENT' ? `no C compiler "${cc}"` : err.message.split('\n')[0]}); namespaces are bound through the Node helper`);
  }
}
