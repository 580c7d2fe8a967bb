// `nsdns network graph`: a picture of the host's networks, drawn from what the daemon reports
// (network.ls and network.inspect over the control socket). SVG by default, or the DOT text for
// people who lay it out themselves. The drawing modules load only when the command runs.
import { writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { NsdnsError } from '../errors.js';
import { call } from './control-client.js';
import { UsageError, socketOption } from './options.js';

/** The daemon's cap on names in one network.inspect request. */
const INSPECT_BATCH = 64;
/** Above this Graphviz takes long to lay the picture out; DOT has no such cost. */
const MAX_SVG_ENDPOINTS = 2000;

export function graphCommand(network: Command): void {
  network.command('graph')
    .description('draw the networks as SVG (or Graphviz DOT): bridges, subnets, gateways, namespaces and their endpoints, published ports; internal networks dashed')
    .argument('[networks...]', 'names or ids (default: every network)')
    .addOption(new Option('--format <format>', 'svg, or dot for Graphviz').choices(['svg', 'dot']).default('svg'))
    .option('-o, --output <file>', 'write the picture to this file (default: stdout)')
    .addOption(socketOption())
    .action(async (names: string[], o: { format: 'svg' | 'dot'; output?: string; socket: string }) => {
      if (o.output !== undefined && (o.output === '' || o.output.includes('\0'))) {
        throw new UsageError(`-o: not a usable file name\nSee 'nsdns network graph --help'.`);
      }
      const inspect = await inspectNetworks(o.socket, names);
      const [{ graphModel, endpointCount }, { graphDot }] = await Promise.all([import('./graph-model.js'), import('./graph-dot.js')]);
      const networks = graphModel(inspect);
      const dot = graphDot(networks);
      let picture = dot;
      if (o.format === 'svg') {
        const endpoints = endpointCount(networks);
        if (endpoints > MAX_SVG_ENDPOINTS) {
          throw new NsdnsError('ERR_BAD_REQUEST', `${endpoints} endpoints are too many to lay out (at most ${MAX_SVG_ENDPOINTS}); name the networks to draw, or use --format dot`);
        }
        picture = await (await import('./graph-render.js')).renderSvg(dot);
      }
      if (o.output === undefined) {
        process.stdout.write(picture);
        return;
      }
      try {
        writeFileSync(o.output, picture);
      } catch (err) {
        throw new NsdnsError('ERR_BAD_REQUEST', `cannot write ${JSON.stringify(o.output.slice(0, 200))}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    });
}

/** The inspect answers of the named networks, or of every network the daemon lists. */
async function inspectNetworks(socket: string, names: readonly string[]): Promise<unknown[]> {
  if (names.length > 0) return batches(names, (batch) => call<unknown[]>(socket, 'network.inspect', { names: batch }));
  const rows = await call<Array<{ name: string; fullId?: string }>>(socket, 'network.ls');
  const ids = rows.map((r) => r.fullId ?? r.name);
  return batches(ids, async (batch) => {
    try {
      return await call<unknown[]>(socket, 'network.inspect', { names: batch });
    } catch (err) {
      // A network removed since ls: draw the others.
      if (!(err instanceof NsdnsError) || err.code !== 'ERR_NOT_FOUND') throw err;
      const one = await Promise.all(batch.map((id) => call<unknown[]>(socket, 'network.inspect', { names: [id] }).catch(() => [])));
      return one.flat();
    }
  });
}

async function batches(items: readonly string[], inspect: (batch: string[]) => Promise<unknown[]>): Promise<unknown[]> {
  const out: unknown[] = [];
  for (let i = 0; i < items.length; i += INSPECT_BATCH) out.push(...(await inspect(items.slice(i, i + INSPECT_BATCH))));
  return out;
}
