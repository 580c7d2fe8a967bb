// `nsdns endpoint health NETWORK ENDPOINT healthy|unhealthy|starting`: an outside system (an
// orchestrator, a monitoring hook) sets an endpoint's health. On an endpoint the daemon probes,
// the state holds until the next probe result changes it.
// `nsdns endpoint egress NETWORK ENDPOINT --allow X ... | --clear`: replaces a provisioned
// endpoint's own egress policy at runtime (docs/egress.md); the daemon checks the rules.
import type { Command } from 'commander';
import { NsdnsError } from '../errors.js';
import { call } from './control-client.js';
import { collect, socketOption } from './options.js';

/** What endpoint.egress answers: the policy the endpoint is under now (null: none). */
interface EgressChange { network: string; name: string; id: string; own: boolean; egress: string[] | null }

export function endpointCommands(program: Command): void {
  const endpoint = program.command('endpoint').description('endpoints of networks; needs a running daemon');

  endpoint.command('health')
    .description('set an endpoint\'s health: shared names (aliases, SRV sets) answer only healthy endpoints; on a probed endpoint the state holds until the next probe result changes it')
    .argument('<network>', 'network name or id')
    .argument('<endpoint>', 'endpoint name or id')
    .argument('<state>', 'healthy|unhealthy|starting')
    .option('--json', 'print JSON', false)
    .addOption(socketOption())
    .action(async (network: string, which: string, state: string, o) => {
      // Any case is taken; which states exist is the daemon's schema's to say.
      const result = await call<Record<string, unknown>>(o.socket, 'endpoint.health', { network, endpoint: which, state: state.toLowerCase() });
      const note = result.probed ? ' (until the next probe result changes it)' : '';
      process.stdout.write(o.json ? `${JSON.stringify(result, null, 2)}\n` : `${result.name} on ${result.network}: ${result.state}${note}\n`);
    });

  endpoint.command('egress')
    .description('replace an endpoint\'s own egress policy (docs/egress.md): new connections follow it within a second, DNS at once; only for endpoints nsdns connected (a registry file\'s: edit the file)')
    .argument('<network>', 'network name or id')
    .argument('<endpoint>', 'endpoint name, alias, id or namespace')
    .option('--allow <entry>', 'a name (NAME, *.ZONE) or range (CIDR[:PORT[/tcp|udp]], [IPv6-CIDR]:PORT) the endpoint may reach; repeatable; replaces the whole policy', collect)
    .option('--clear', 'remove the endpoint\'s own policy: its network\'s default, if any, applies again', false)
    .option('--json', 'print JSON', false)
    .addOption(socketOption())
    .action(async (network: string, which: string, o) => {
      const allow = o.allow as string[] | undefined;
      if ((allow === undefined) === !o.clear) throw new NsdnsError('ERR_BAD_REQUEST', 'give --allow ENTRY (repeatable) or --clear, not both');
      const result = await call<EgressChange>(o.socket, 'endpoint.egress', { network, endpoint: which, egress: o.clear ? null : allow });
      if (o.json) return void process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      const policy = result.egress === null ? 'no egress policy' : `${result.own ? 'egress' : 'egress (the network\'s default)'}: ${result.egress.length > 0 ? result.egress.join(', ') : 'nothing outside its networks'}`;
      process.stdout.write(`${result.name} on ${result.network}: ${policy}\n`);
    });
}
