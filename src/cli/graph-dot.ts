// The picture of `nsdns network graph` as Graphviz DOT: a pure function of the networks, so a
// golden file pins it. Networks are boxes on the right (dashed when internal); each namespace is
// one box on the left with a row per endpoint, and each row is joined to its network, so a
// namespace on several networks is one node with an edge to each. A registry file's endpoint
// (no namespace) is a box of its own.
//
// Names come from users. None of them is ever a DOT identifier (nodes are n0, ns0, ... and rows
// e0, e1, ...), and every text goes into an HTML-like label through `htmlText`, which leaves
// nothing Graphviz or the SVG it writes could read as markup.
import type { GraphEndpoint, GraphNetwork } from './graph-model.js';

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Text for an HTML-like label: markup characters as entities; control characters, line breaks,
 * non-characters and unpaired surrogates (none of which XML allows) as U+FFFD, so a name with a
 * newline shows as one line with a mark where the newline was. A backslash is doubled: Graphviz
 * reads \N, \G, \l ... in HTML-like labels too (even written as &#92;), and \\ as one backslash.
 */
export function htmlText(s: string): string {
  return s
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
    .replace(/[&<>"']/g, (c) => ENTITIES[c])
    .replace(/\\/g, '\\\\');
}

/** A namespace box, or the box of one endpoint that has no namespace. */
interface Holder {
  title?: string;
  rows: Array<{ endpoint: GraphEndpoint; network: number }>;
}

/** /run/netns/NAME is shown as the name people typed; any other path as it is. */
function namespaceTitle(path: string): string {
  const named = /^\/run\/netns\/([^/]+)$/.exec(path);
  return named ? `netns ${named[1]}` : path;
}

function holders(networks: readonly GraphNetwork[]): Holder[] {
  const byNamespace = new Map<string, Holder>();
  const lone: Holder[] = [];
  networks.forEach((net, network) => {
    for (const endpoint of net.endpoints) {
      if (endpoint.namespace === undefined) {
        lone.push({ rows: [{ endpoint, network }] });
        continue;
      }
      const holder = byNamespace.get(endpoint.namespace) ?? { title: namespaceTitle(endpoint.namespace), rows: [] };
      holder.rows.push({ endpoint, network });
      byNamespace.set(endpoint.namespace, holder);
    }
  });
  const namespaces = [...byNamespace.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, h]) => h);
  return [...namespaces, ...lone];
}

function networkLabel(net: GraphNetwork): string {
  const lines = [`<B>${htmlText(net.name)}</B>`];
  lines.push(htmlText(net.bridge !== undefined ? `bridge ${net.bridge}` : `${net.driver} network`));
  for (const s of net.subnets) lines.push(htmlText(s.gateway !== undefined ? `${s.subnet} gw ${s.gateway}` : s.subnet));
  if (net.domain !== undefined) lines.push(htmlText(`domain ${net.domain}`));
  if (net.internal) lines.push('<I>internal: no route out</I>');
  if (net.id !== '') lines.push(`<FONT POINT-SIZE="8" COLOR="#6b7280">${htmlText(net.id.slice(0, 12))}</FONT>`);
  return `<${lines.join('<BR/>')}>`;
}

function endpointCell(endpoint: GraphEndpoint, port: string): string {
  const lines = [`<B>${htmlText(endpoint.name)}</B>`];
  if (endpoint.aliases.length > 0) lines.push(`<I>${htmlText(`aliases ${endpoint.aliases.join(', ')}`)}</I>`);
  for (const address of endpoint.addresses) lines.push(htmlText(address));
  if (endpoint.ifname !== undefined) lines.push(htmlText(endpoint.ifname));
  for (const p of endpoint.ports) lines.push(htmlText(`publish ${p}`));
  return `<TD PORT="${port}" ALIGN="LEFT" BALIGN="LEFT">${lines.join('<BR/>')}</TD>`;
}

function holderLabel(holder: Holder, first: number): string {
  const rows = holder.rows.map((r, i) => `<TR>${endpointCell(r.endpoint, `e${first + i}`)}</TR>`);
  if (holder.title !== undefined) rows.unshift(`<TR><TD BGCOLOR="#e5e7eb"><B>${htmlText(holder.title)}</B></TD></TR>`);
  return `<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4" COLOR="#4b5563">${rows.join('')}</TABLE>>`;
}

/** DOT text for the networks (as `graphModel` gives them): the same input, the same text. */
export function graphDot(networks: readonly GraphNetwork[]): string {
  const out = [
    'graph nsdns {',
    '  graph [rankdir=LR, bgcolor="white", fontname="Verdana", nodesep=0.3, ranksep=1.2];',
    '  node [fontname="Verdana", fontsize=10];',
    '  edge [color="#4b5563"];',
  ];
  if (networks.length === 0) out.push('  graph [label="no networks"];');
  networks.forEach((net, i) => {
    const style = net.internal ? 'style="rounded,filled,dashed", fillcolor="#f3f4f6"' : 'style="rounded,filled", fillcolor="#dbeafe"';
    out.push(`  n${i} [shape=box, ${style}, label=${networkLabel(net)}];`);
  });
  let row = 0;
  holders(networks).forEach((holder, i) => {
    out.push(`  ns${i} [shape=plain, label=${holderLabel(holder, row)}];`);
    for (const r of holder.rows) {
      const dashed = networks[r.network].internal ? ' [style=dashed]' : '';
      // :e leaves the row at its right side, where the networks are.
      out.push(`  ns${i}:e${row++}:e -- n${r.network}${dashed};`);
    }
  });
  out.push('}');
  return `${out.join('\n')}\n`;
}
