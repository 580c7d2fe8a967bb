// A network, several sources (registry/union.ts): what setting another host's endpoints on a large
// network costs, for a packed network (a registry file's) and one built from objects (nsdns's own
// state), and a lookup in the union. In process, no daemon, no root:
//   node dist/bench/registry-union.js [ENDPOINTS]       (default 10 000)
import { packNetwork } from '../src/registry/compiled.js';
import { parseDocumentText, remoteEndpoint } from '../src/registry/document.js';
import { Registry } from '../src/registry/registry.js';
import type { Endpoint } from '../src/registry/types.js';

const N = Number(process.argv[2] ?? 10_000);
const lines = Array.from({ length: N }, (_, i) => `  - {name: h${i}, ipv4: 10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}}`);
const record = parseDocumentText(`name: big\nsubnets: [{subnet: 10.0.0.0/8}]\nendpoints:\n${lines.join('\n')}\n`, 'big.yaml');
const remote = (n: number, tag: string): Endpoint[] =>
  Array.from({ length: n }, (_, i) => remoteEndpoint({ name: `r${tag}-${i}`, ipv4: `10.200.${i >> 8 & 255}.${i & 255}` }, record.network, 'bench'));

function ms(reps: number, run: () => void): string {
  run();
  const start = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) run();
  return (Number(process.hrtime.bigint() - start) / 1e6 / reps).toFixed(3);
}

console.log('primary\tcontributed\tsetContribution ms\tlookup ns');
for (const kind of ['packed', 'objects'] as const) {
  const registry = new Registry();
  if (kind === 'packed') {
    const { tables, notable } = packNetwork(record);
    registry.setPackedNetwork(record.network, tables, notable, 'file:big.yaml');
  } else registry.setNetwork(record, 'file:big.yaml');
  for (const n of [0, 1, 100, N]) {
    const endpoints = remote(n, String(n));
    const set = ms(n === N ? 5 : 50, () => registry.setContribution('big', 'etcd:bench', endpoints));
    // Distinct names each time, past the view's memo: the layered lookup itself.
    const view = registry.current().view();
    const start = process.hrtime.bigint();
    for (let i = 0; i < 100_000; i++) view.lookup(`h${i % N}.big`);
    const lookup = (Number(process.hrtime.bigint() - start) / 100_000).toFixed(0);
    console.log(`${kind} ${N}\t${n}\t${set}\t${lookup}`);
  }
}
