// `nsdns network ...`: clients of the daemon's control socket, with the conventions of
// `docker network` (create prints the id, ls a table, inspect JSON). Each command turns its flags
// into one request and prints the answer; the daemon judges the values.
import { Option, type Command } from 'commander';
import { call } from './control-client.js';
import { collect, keyValues, socketOption, wholeNumber } from './options.js';
import { compileFilters, compileTemplate } from './format.js';
import { dockerLsJson, filterable, lsTable, type LsRow } from './network-ls.js';
import { confirm, print } from './print.js';
import { connectCommands } from './network-connect.js';
import { graphCommand } from './graph.js';
import { readPolicyFile } from './egress-command.js';

interface RemoveResult {
  removed: string[];
  failed: Array<{ name: string; code: string; message: string }>;
}

export function networkCommands(program: Command): void {
  const network = program.command('network').description('manage networks (docker network style); needs a running daemon');

  network.command('create')
    .description('create a network: a bridge (default), or macvlan/ipvlan on a parent interface (-o parent=IFACE)')
    .argument('<name>')
    .addOption(new Option('-d, --driver <driver>', 'macvlan and ipvlan need -o parent=IFACE (mode: -o macvlan_mode=, -o ipvlan_mode=); overlay needs a --cluster daemon (-o vni=N)').choices(['bridge', 'macvlan', 'ipvlan', 'overlay']))
    .option('--subnet <cidr>', 'subnet, IPv4 or IPv6 (repeatable; default: a free one from the pools)', collect)
    .option('--gateway <ip>', 'gateway address (default: the first address of the subnet)')
    .option('--ip-range <cidr>', 'allocate endpoint addresses from this part of the subnet')
    .option('--aux-address <name=ip>', 'an address of the subnet never given to an endpoint (a router, a printer; repeatable)', collect)
    .option('--internal', 'no route out and no upstream DNS', false)
    .option('--bridge <name>', 'bridge interface name (default derived from the network id)')
    .option('--mtu <n>', 'MTU of the bridge and veths', wholeNumber)
    .option('--dns-upstream <ip>', 'upstream DNS server for this network (repeatable)', collect)
    .option('--domain <name>', 'extra DNS zone for names on this network')
    .option('-o, --opt <key=value>', 'driver option (parent, macvlan_mode, ipvlan_mode; others kept as given; repeatable)', collect)
    .option('--label <key=value>', 'network label, shown by inspect and matched by ls --filter label= (repeatable)', collect)
    .option('--record <name=[type:]value>', 'static record for every namespace on the network: printer=10.77.0.200, docs=CNAME:web (A, AAAA, CNAME; repeatable)', collect)
    .option('--egress-policy <file>', 'egress by name: the default policy of the network\'s endpoints, a YAML or JSON list of names, *.zones and CIDRs (docs/egress.md)')
    .option('--json', 'print the network as JSON', false)
    .addOption(socketOption())
    .action(async (name: string, o) => {
      const egress = o.egressPolicy !== undefined ? await readPolicyFile(o.egressPolicy) : undefined;
      const options = keyValues('--opt', o.opt, 'network create');
      const labels = keyValues('--label', o.label, 'network create');
      const auxAddresses = keyValues('--aux-address', o.auxAddress, 'network create');
      const result = await call<{ Id: string }>(o.socket, 'network.create', {
        name, ...(o.driver !== undefined && { driver: o.driver }), subnets: o.subnet, gateway: o.gateway, ipRange: o.ipRange, internal: o.internal, bridge: o.bridge,
        mtu: o.mtu, dnsUpstreams: o.dnsUpstream, domain: o.domain, options,
        ...(o.label !== undefined && { labels }), ...(o.auxAddress !== undefined && { auxAddresses }), ...(o.record !== undefined && { records: o.record }),
        ...(egress !== undefined && { egress }),
      });
      print(o.json ? result : result.Id);
    });

  network.command('ls')
    .alias('list')
    .description('list networks')
    .option('-f, --filter <key=value>', 'only networks that match: name (part of it), id (prefix), driver, label (KEY or KEY=VALUE), scope, type (custom or builtin); repeatable', collect)
    .option('--format <format>', "json (one object per line, docker's keys) or a template such as '{{.Name}} {{.ID}}'")
    .option('--json', "print one JSON array, with the keys of --format json", false)
    .option('-q, --quiet', 'print names only', false)
    .option('--no-trunc', 'show full ids')
    .addOption(socketOption())
    .action(async (o) => {
      const keep = compileFilters(o.filter ?? []);
      const template = o.format !== undefined && o.format !== 'json' && o.format !== 'table' ? compileTemplate(o.format) : undefined;
      const rows = (await call<LsRow[]>(o.socket, 'network.ls')).filter((r) => keep(filterable(r)));
      if (o.json) print(rows.map((r) => dockerLsJson(r, o.trunc)));
      else if (o.format === 'json') for (const r of rows) process.stdout.write(`${JSON.stringify(dockerLsJson(r, o.trunc))}\n`);
      else if (template) for (const r of rows) print(template(dockerLsJson(r, o.trunc)));
      else if (o.quiet) rows.forEach((r) => print(String(r.name)));
      else print(lsTable(rows, o.trunc));
    });

  network.command('inspect')
    .description('show networks as JSON (the shape of docker network inspect)')
    .argument('<networks...>', 'names or ids')
    .option('-f, --format <template>', "print a template per network, such as '{{.Id}}', '{{json .IPAM.Config}}' or '{{range .IPAM.Config}}{{.Subnet}}{{end}}'")
    .addOption(socketOption())
    .action(async (names: string[], o) => {
      const template = o.format !== undefined ? compileTemplate(o.format) : undefined;
      const networks = await call<unknown[]>(o.socket, 'network.inspect', { names });
      if (template) for (const n of networks) print(template(n));
      else print(networks);
    });

  network.command('rm')
    .alias('remove')
    .description('remove networks: each one that can be is removed, each failure reported (exit 1 if any)')
    .argument('<networks...>', 'names or ids')
    .option('-f, --force', 'no error when a network does not exist (as docker)', false)
    .option('--disconnect', 'detach attached endpoints first (otherwise a network with endpoints is refused)', false)
    .option('--json', 'print JSON: { removed, failed }', false)
    .addOption(socketOption())
    .action(async (names: string[], o) => {
      const result = await call<RemoveResult>(o.socket, 'network.rm', { names, disconnect: o.disconnect, ignoreMissing: o.force, report: true });
      if (o.json) print(result);
      else for (const name of result.removed) print(name);
      if (!o.json) for (const f of result.failed) process.stderr.write(`nsdns: ${f.message}\n`);
      if (result.failed.length > 0) process.exitCode = 1;
    });

  network.command('prune')
    .description('remove every nsdns network without endpoints (asks first on a terminal, unless --force)')
    .option('-f, --force', 'do not ask for confirmation', false)
    .option('--json', 'print JSON', false)
    .addOption(socketOption())
    .action(async (o) => {
      if (!o.force && process.stdin.isTTY && process.stderr.isTTY && !(await confirm('WARNING! This will remove all nsdns networks without endpoints.\nAre you sure you want to continue? [y/N] '))) return;
      const removed = await call<string[]>(o.socket, 'network.prune');
      print(o.json ? removed : removed.length > 0 ? `Deleted Networks:\n${removed.join('\n')}` : 'No networks to delete');
    });

  connectCommands(network);
  graphCommand(network);
}
