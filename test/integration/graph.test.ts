// `nsdns network graph`: the picture of a running daemon's networks names every network,
// endpoint, address and alias and marks internal networks; a namespace on two networks is one
// box joined to both; names people chose (quotes, newlines, markup) never break the DOT or the SVG.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { copyFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Command } from 'commander';
import { ROOT, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { tempDir } from '../helpers/tmp.js';
import { graphCommand } from '../../src/cli/graph.js';
import { graphModel } from '../../src/cli/graph-model.js';
import { graphDot } from '../../src/cli/graph-dot.js';
import { renderSvg } from '../../src/cli/graph-render.js';

const FIXTURES = path.join(ROOT, 'fixtures/graph');

/** `nsdns network graph ARGS`, in this process, as the CLI registers it. */
async function graph(...args: string[]): Promise<void> {
  const program = new Command('nsdns').exitOverride();
  graphCommand(program.command('network').exitOverride().configureOutput({ writeErr: () => {} }));
  await program.parseAsync(['network', 'graph', ...args], { from: 'user' });
}

/**
 * Every text of an SVG, read by a real XML parser (Python's expat): throws when the SVG is not
 * well-formed XML. .ci/run installs python3; without it, the tests that read the SVG say they skipped
 * that part (t.skip) instead of passing silently.
 */
const NO_PYTHON = 'python3 is not installed: the SVG was not read back by an XML parser (only the DOT was checked)';

function svgTexts(svg: string): string[] | undefined {
  const script = 'import sys, json, xml.etree.ElementTree as ET\nroot = ET.fromstring(sys.stdin.buffer.read())\nprint(json.dumps(["".join(e.itertext()) for e in root.iter("{http://www.w3.org/2000/svg}text")]))';
  try {
    return JSON.parse(execFileSync('python3', ['-c', script], { input: svg, encoding: 'utf8' })) as string[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

describe('network graph of a running daemon', () => {
  let daemon: RunningDaemon;
  const dir = tempDir('nsdns-graph-');
  const registry = tempDir('nsdns-graph-registry-');

  before(async () => {
    // The demo lab's two networks, and an internal one.
    for (const file of ['lab.yaml', 'ops.yaml']) copyFileSync(path.join(ROOT, 'fixtures/lab', file), path.join(registry.dir, file));
    registry.write('vault.yaml', 'name: vault\ninternal: true\nsubnets:\n  - subnet: 10.79.0.0/24\n    gateway: 10.79.0.1\nendpoints:\n  - name: secrets\n    ipv4: 10.79.0.7\n    aliases: [kv]\n');
    daemon = await startDaemon(['--listen', '127.0.0.1:0', '--registry', registry.dir]);
  });
  after(async () => {
    await daemon?.stop();
    dir.cleanup();
    registry.cleanup();
  });
  const socket = () => path.join(daemon.stateDir, 'nsdns.sock');

  it('the DOT names every network, endpoint, address and alias, and marks the internal one', async () => {
    const file = path.join(dir.dir, 'lab.dot');
    await graph('--socket', socket(), '--format', 'dot', '-o', file);
    const dot = readFileSync(file, 'utf8');
    for (const text of ['<B>lab</B>', '<B>ops</B>', '<B>vault</B>', '10.77.0.0/24 gw 10.77.0.1', 'fd77::/64', '10.78.0.0/24 gw 10.78.0.1', 'domain ops.example',
      '<B>web</B>', 'aliases www', '10.77.0.10/24', '<B>db</B>', '10.77.0.11/24', 'fd77::11/64', '<B>cache</B>', 'fd77::20/64',
      '<B>mon</B>', 'aliases grafana', '10.78.0.5/24', '<B>secrets</B>', 'aliases kv', '10.79.0.7/24']) {
      assert.ok(dot.includes(text), `the DOT shows ${text}`);
    }
    const vault = dot.split('\n').find((l) => l.includes('<B>vault</B>'))!;
    assert.match(vault, /style="rounded,filled,dashed"/);
    assert.match(vault, /internal: no route out/);
    assert.doesNotMatch(dot.split('\n').find((l) => l.includes('<B>lab</B>'))!, /dashed|internal/);
    const vaultNode = /^\s*(n\d+) /.exec(vault)![1];
    assert.match(dot, new RegExp(`-- ${vaultNode} \\[style=dashed\\];`), 'the edge to the internal network is dashed');
  });

  it('draws SVG by default, to stdout or -o, and only the networks named', async (t) => {
    const file = path.join(dir.dir, 'lab.svg');
    await graph('--socket', socket(), '-o', file, 'ops');
    const svg = readFileSync(file, 'utf8');
    assert.match(svg, /^<\?xml[^]*<svg [^]*<\/svg>\s*$/);
    const texts = svgTexts(svg);
    if (!texts) return t.skip(NO_PYTHON);
    for (const text of ['ops', 'mon', 'aliases grafana', '10.78.0.5/24']) assert.ok(texts.includes(text), `the SVG shows ${text}: ${JSON.stringify(texts)}`);
    assert.ok(!texts.includes('lab') && !texts.includes('web'), 'only the network named');
  });

  it('a format other than svg or dot is a usage error', async () => {
    await assert.rejects(graph('--socket', socket(), '--format', 'png'), /argument 'png' is invalid\. Allowed choices are svg, dot/);
  });

  it('a network that does not exist is the daemon\'s "not found"', async () => {
    await assert.rejects(graph('--socket', socket(), '--format', 'dot', '-o', path.join(dir.dir, 'x.dot'), 'nosuch'), /network "nosuch" not found/);
  });
});

describe('network graph DOT (pure)', () => {
  it('matches the golden file: bridges, gateways, namespaces on two networks, published ports, internal dashed', () => {
    const dot = graphDot(graphModel(JSON.parse(readFileSync(path.join(FIXTURES, 'inspect.json'), 'utf8'))));
    assert.equal(dot, readFileSync(path.join(FIXTURES, 'inspect.dot'), 'utf8'));
    // The namespace web is one box with an edge to each of its networks.
    assert.equal(dot.match(/netns web/g)?.length, 1);
    const web = /^\s*(ns\d+) .*netns web/m.exec(dot)![1];
    assert.deepEqual(dot.match(new RegExp(`^\\s*${web}:e\\d+:e -- n\\d+`, 'gm'))?.length, 2);
  });

  it('hostile names are escaped: the DOT renders without an error and the SVG is well-formed XML that shows them', async (t) => {
    const hostile = ['a"b\'c', 'line\nbreak', '<script>alert(1)</script>', '{}[];--', 'amp&amp;&#0;', '\\N\\G\\l', ']]><!--', 'x\u0000\u2028y'];
    const inspect = [{
      Name: hostile[0], Id: '"><', Internal: true, Driver: hostile[3],
      IPAM: { Config: [{ Subnet: hostile[2], Gateway: hostile[4] }] },
      Options: { 'com.docker.network.bridge.name': hostile[1] }, DNS: { Domain: hostile[6] },
      Containers: {
        x: { Name: hostile[2], Aliases: [hostile[5], hostile[6]], IPv4Address: hostile[7], Namespace: `/run/netns/${hostile[3]}`, Interface: hostile[0],
          Ports: [{ hostIp: hostile[2], hostPort: 1, containerPort: 2, protocol: 'udp' }] },
        y: { Name: hostile[1], Aliases: [], Namespace: hostile[6] },
      },
    }];
    const dot = graphDot(graphModel(inspect));
    assert.doesNotMatch(dot, /<script>|alert\(1\)<\/script>/, 'no raw markup');
    assert.equal(dot.split('\n').length, 4 + 1 + 2 * 2 + 2, 'a newline in a name does not start a line of DOT');
    const svg = await renderSvg(dot); // throws on any Graphviz error, a label it could not read included
    assert.doesNotMatch(svg, /<script/);
    const texts = svgTexts(svg);
    if (!texts) return t.skip(NO_PYTHON);
    const shown = (s: string) => s.replace(/[\u0000-\u001f\u2028]/g, '\ufffd');
    for (const name of [hostile[0], hostile[2], hostile[1]]) assert.ok(texts.includes(shown(name)), `the SVG shows ${JSON.stringify(name)}: ${JSON.stringify(texts)}`);
    for (const text of [`aliases ${hostile[5]}, ${hostile[6]}`, `<script>alert(1)</script> gw ${hostile[4]}`, '"><', shown(hostile[7]), `bridge ${shown(hostile[1])}`, `domain ${hostile[6]}`, `publish ${hostile[2]}:1→2/udp`, `netns ${hostile[3]}`, hostile[6]]) {
      assert.ok(texts.includes(text), `the SVG shows ${JSON.stringify(text)}: ${JSON.stringify(texts)}`);
    }
  });

  it('data that is not an inspect answer draws an empty picture instead of failing', async () => {
    for (const junk of [null, 'x', [1, null, { Name: 5 }, { Name: 'ok', Containers: 'no', IPAM: { Config: 'no' } }]]) {
      const networks = graphModel(junk);
      assert.ok(networks.length <= 1);
      await renderSvg(graphDot(networks));
    }
    assert.match(graphDot([]), /label="no networks"/);
  });
});
