// `nsdns endpoint health NETWORK ENDPOINT healthy|unhealthy|starting`: an outside system (an
// orchestrator, a monitoring hook) sets an endpoint's health. On an endpoint the daemon probes,
// the state holds until the next probe result changes it.
import type { Command } from 'commander';
import { call } from './control-client.js';
import { socketOption } from './options.js';

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
}
