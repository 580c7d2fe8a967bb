// What the kernel says of a namespace, for `nsdns debug`: its interfaces, routes, and whether
// anything listens at 127.0.0.11:53. Read by the CLI itself with `ip` and `ss` under nsenter, so
// debug shows it even when the daemon is down or wrong about it.

export interface KernelView {
  interfaces: Array<{ name: string; state: string; mac?: string; addresses: string[] }>;
  routes: string[];
  listening53: boolean;
}

export async function kernelView(netns: string): Promise<KernelView> {
  const { execa } = await import('execa');
  const run = async (...args: string[]) => (await execa('nsenter', [`--net=${netns}`, '--', ...args], { reject: false })).stdout;
  const interfaces = JSON.parse((await run('ip', '-j', 'addr', 'show')) || '[]') as Array<{ ifname: string; operstate: string; address?: string; addr_info?: Array<{ local: string; prefixlen: number }> }>;
  const routes = JSON.parse((await run('ip', '-j', 'route', 'show')) || '[]') as Array<{ dst: string; gateway?: string; dev?: string }>;
  const sockets = await run('ss', '-Hlnu', 'src', '127.0.0.11:53');
  return {
    interfaces: interfaces.map((i) => ({ name: i.ifname, state: i.operstate, mac: i.address, addresses: (i.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`) })),
    routes: routes.map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}`),
    listening53: sockets.trim().length > 0,
  };
}
