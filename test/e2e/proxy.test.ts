/**
 * A vault service reached through an HTTP proxy (HTTPS_PROXY), as networks without a direct way
 * out require: a real CONNECT proxy here relays a tunnel, and the vault's TLS with its pinned
 * certificate runs end to end through it. NO_PROXY names hosts reached directly.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectExit, expectNoStack, parseJson, PASSPHRASE, runCli, writePassphrase } from '../helpers/cli.js';
import { expectSameTree } from '../helpers/fs-tree.js';
import { startServe, type ServeProcess } from '../helpers/serve.js';

/** A CONNECT proxy on 127.0.0.1 that asks for user ann, password `pw`, and remembers the tunnels it opened. */
async function startProxy(password: string) {
  const tunnels: string[] = [];
  /** every byte relayed, both ways */
  const relayed: Buffer[] = [];
  const refused: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req: http.IncomingMessage, client: net.Socket) => {
    sockets.add(client);
    client.on('error', () => undefined);
    if (req.headers['proxy-authorization'] !== `Basic ${Buffer.from(`ann:${password}`).toString('base64')}`) {
      refused.push(req.url ?? '');
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\n\r\n');
      return;
    }
    const [host, port] = [req.url!.slice(0, req.url!.lastIndexOf(':')), Number(req.url!.slice(req.url!.lastIndexOf(':') + 1))];
    const upstream = net.connect({ host, port }, () => {
      tunnels.push(req.url!);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client);
      client.pipe(upstream);
      client.on('data', (b: Buffer) => relayed.push(b));
      upstream.on('data', (b: Buffer) => relayed.push(b));
    });
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    tunnels,
    refused,
    relayed: () => Buffer.concat(relayed),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a vault service through an HTTP proxy', () => {
  let root: string;
  let server: ServeProcess;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let credentials: string;

  beforeAll(async () => {
    root = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'azbk-proxy-')));
    const dir = path.join(root, 'vault');
    expectExit(await runCli(['vault', 'create', '--path', dir, '--name', 'Proxied']), 0);
    server = await startServe(['--path', dir]);
    credentials = path.join(root, 'Proxied.VaultCredentials');
    expectExit(await runCli(['vault', 'credentials', '--path', dir, '--endpoint', server.url, '--out', credentials]), 0);
    proxy = await startProxy('pw');
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await proxy?.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('registers, backs up and restores through the tunnel, the proxy never seeing the data', async () => {
    const src = path.join(root, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'secret.txt'), 'only the vault may store this, sealed\n');
    const home = path.join(root, 'home-A');
    const env = { HTTPS_PROXY: `http://ann:pw@127.0.0.1:${proxy.port}` };
    const run = (args: string[]) => runCli(args, { home, env });
    expectExit(await run(['register', '--vault-credentials', credentials, '--passphrase-file', await writePassphrase(root, PASSPHRASE), '--machine-name', 'A']), 0);
    const made = await run(['backup', '--now', '--include', src, '--json']);
    expectExit(made, 0);
    const target = path.join(root, 'restored');
    expectExit(await run(['restore', '--point', 'latest', '--target', target]), 0);
    await expectSameTree(src, path.join(target, src));
    const vaultHost = new URL(server.url).host;
    expect(proxy.tunnels.length).toBeGreaterThan(0);
    expect(new Set(proxy.tunnels)).toEqual(new Set([vaultHost]));
    const relayed = proxy.relayed();
    expect(relayed.length).toBeGreaterThan(1000);
    for (const plain of ['only the vault may store this', 'secret.txt', PASSPHRASE, '/points/', 'HTTP/1.1']) expect(relayed.includes(plain), plain).toBe(false);

    // Reached directly when NO_PROXY names the host: the proxy opens no tunnel.
    const before = proxy.tunnels.length;
    expectExit(await runCli(['points', '--json'], { home, env: { ...env, NO_PROXY: '127.0.0.1' } }), 0);
    expect(proxy.tunnels.length).toBe(before);
    expect(parseJson(await runCli(['points', '--json'], { home, env })).points).toHaveLength(1);
    expect(proxy.tunnels.length).toBeGreaterThan(before);
  }, 60_000);

  it('says the proxy refused the tunnel (exit 10), without its password', async () => {
    const home = path.join(root, 'home-B');
    const r = await runCli(['register', '--vault-credentials', credentials, '--passphrase-file', await writePassphrase(root, PASSPHRASE), '--machine-name', 'B'], {
      home,
      env: { HTTPS_PROXY: `http://ann:wrong-secret@127.0.0.1:${proxy.port}` },
    });
    expectExit(r, 10);
    expectNoStack(r);
    expect(r.stderr).toContain(`the proxy http://127.0.0.1:${proxy.port} refused the tunnel (407 Proxy Authentication Required)`);
    expect(r.stderr).toContain('HTTPS_PROXY');
    expect(r.stderr + r.stdout).not.toContain('wrong-secret');
    expect(proxy.refused.length).toBeGreaterThan(0);
    await expect(fs.stat(path.join(home, 'registration.json'))).rejects.toThrow();

    const bad = await runCli(['points'], { home: path.join(root, 'home-A'), env: { HTTPS_PROXY: 'https://127.0.0.1:1' } });
    expectExit(bad, 2);
    expect(bad.stderr).toContain('AZBK_BAD_INPUT');

    // A proxy nobody listens on is named: the vault was not the one out of reach.
    const none = await runCli(['points'], { home: path.join(root, 'home-A'), env: { HTTPS_PROXY: 'http://u:pw@127.0.0.1:9' } });
    expectExit(none, 10);
    expect(none.stderr).toContain('ECONNREFUSED: the proxy http://127.0.0.1:9 (HTTPS_PROXY) cannot be reached');
    expect(none.stderr).not.toContain('pw@');
  }, 60_000);
});
