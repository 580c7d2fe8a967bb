// Reaching a shared registry's etcd over TLS with a client certificate (a throwaway CA made by
// openssl here), and with a user whose password is read from a file and never logged.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { dig, digShort } from '../helpers/dig.js';
import { TestEtcd } from '../helpers/etcd.js';
import { tempDir } from '../helpers/tmp.js';

const PREFIX = '/nsdns-secure';

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
async function makeCertificates(dir: string): Promise<Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', string>> {
  const f = (name: string) => path.join(dir, name);
  const openssl = (args: string[]) => execa('openssl', args, { cwd: dir });
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=nsdns-test-ca', '-keyout', f('ca.key'), '-out', f('ca.pem')]);
  for (const [who, ext] of [['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=nsdns-test-${who}`, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`)]);
    await execa('sh', ['-c', `printf '%s\\n' "$EXT" > ${who}.ext`], { cwd: dir, env: { EXT: ext } });
    await openssl(['x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', f(`${who}.ext`), '-out', f(`${who}.pem`)]);
  }
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

describe('etcd registry over TLS, and with a user', () => {
  const dir = tempDir('nsdns-etcd-tls-');
  let certs: Awaited<ReturnType<typeof makeCertificates>>;
  let etcd: TestEtcd;
  const daemons: RunningDaemon[] = [];

  before(async () => {
    certs = await makeCertificates(dir.dir);
    etcd = await TestEtcd.start({
      portBase: 17300,
      scheme: 'https',
      args: ['--cert-file', certs.serverCert, '--key-file', certs.serverKey, '--trusted-ca-file', certs.ca, '--client-cert-auth'],
      ctlArgs: ['--cacert', certs.ca, '--cert', certs.clientCert, '--key', certs.clientKey],
    });
    await etcd.put(`${PREFIX}/networks/secure`, JSON.stringify({ name: 'secure' }));
    await etcd.put(`${PREFIX}/endpoints/secure/a/vault`, JSON.stringify({ name: 'vault', ipv4: '10.123.40.1' }));
  });
  after(async () => {
    for (const d of daemons) await d.stop();
    await etcd?.stop();
    dir.cleanup();
  });

  it('reads the registry with --etcd-cacert, --etcd-cert and --etcd-key', async () => {
    const daemon = await startDaemon(['--registry', `etcd://${etcd.hostPort}${PREFIX}`, '--listen', '127.0.0.1:0',
      '--etcd-cacert', certs.ca, '--etcd-cert', certs.clientCert, '--etcd-key', certs.clientKey]);
    daemons.push(daemon);
    assert.deepEqual(await digShort(daemon.server, 'vault.secure'), ['10.123.40.1']);
  });

  it('without a client certificate reads nothing and says so, answering the rest', async () => {
    const daemon = await startDaemon(['--registry', `etcd://${etcd.hostPort}${PREFIX}`, '--listen', '127.0.0.1:0', '--etcd-cacert', certs.ca]);
    daemons.push(daemon);
    await daemon.waitForLog((l) => String(l.msg).startsWith('etcd does not answer yet'));
    assert.equal((await dig(daemon.server, 'vault.secure')).status, 'REFUSED');
  });

  it('refuses to start on a missing certificate file, naming it', async () => {
    await assert.rejects(startDaemon(['--registry', `etcd://${etcd.hostPort}${PREFIX}`, '--listen', '127.0.0.1:0', '--etcd-cacert', path.join(dir.dir, 'nope.pem')]),
      /cannot read the etcd CA certificate ".*nope\.pem": ENOENT/);
  });

  it('logs in as --etcd-user with the password from --etcd-password-file, never logging it', async () => {
    const password = 'pw-Zq81-never-logged';
    dir.write('password', `${password}\n`);
    const ctl = (args: string[]) => etcd.ctl(args);
    await ctl(['user', 'add', 'root', '--new-user-password', 'root-pw-1']);
    await ctl(['role', 'add', 'reader']);
    await ctl(['role', 'grant-permission', 'reader', 'read', '--prefix=true', `${PREFIX}/`]);
    await ctl(['user', 'add', 'nsdns-reader', '--new-user-password', password]);
    await ctl(['user', 'grant-role', 'nsdns-reader', 'reader']);
    await ctl(['auth', 'enable']);
    const daemon = await startDaemon(['--registry', `etcd://${etcd.hostPort}${PREFIX}`, '--listen', '127.0.0.1:0',
      '--etcd-cacert', certs.ca, '--etcd-cert', certs.clientCert, '--etcd-key', certs.clientKey,
      '--etcd-user', 'nsdns-reader', '--etcd-password-file', path.join(dir.dir, 'password')]);
    daemons.push(daemon);
    assert.deepEqual(await digShort(daemon.server, 'vault.secure'), ['10.123.40.1']);
    assert.ok(!daemon.logs.some((l) => JSON.stringify(l).includes(password)), 'the password is not in the log');
  });
});
