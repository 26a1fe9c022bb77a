/**
 * Reaching a vault service through an HTTP proxy, as networks that allow no direct connection out
 * require: HTTPS_PROXY (or https_proxy) names it, NO_PROXY (or no_proxy) the hosts reached
 * directly. The proxy only relays a tunnel (CONNECT): TLS, and the pinned certificate, are end to
 * end with the vault, so the proxy sees neither data nor credentials. A user and password in the
 * proxy's URL go to the proxy as Basic authorization, and never into a message.
 */
import net from 'node:net';
import type { buildConnector } from 'undici';
import { AzbkError } from '../shared/errors.js';

export interface ProxyConfig {
  /** http://host:port, without user or password: what messages name */
  readonly shown: string;
  readonly host: string;
  readonly port: number;
  /** the Proxy-Authorization header's value, or null */
  readonly auth: string | null;
}

const env = (e: NodeJS.ProcessEnv, name: string) => e[name] ?? e[name.toLowerCase()] ?? '';

/**
 * The proxy to reach `target` through, from the environment; null for none (unset, or NO_PROXY
 * names the host: `*`, the host itself, or a domain it is in, `.example.com` or `example.com`,
 * with or without the port). AZBK_BAD_INPUT for a proxy URL azbk cannot use.
 */
export function proxyFor(target: URL, e: NodeJS.ProcessEnv = process.env): ProxyConfig | null {
  const raw = env(e, 'HTTPS_PROXY').trim();
  if (raw === '' || bypassed(target, env(e, 'NO_PROXY'))) return null;
  let url: URL;
  try {
    url = new URL(raw.includes('://') ? raw : `http://${raw}`);
  } catch {
    throw new AzbkError('AZBK_BAD_INPUT', 'HTTPS_PROXY is not a URL.', { hint: 'Set it to http://HOST:PORT (with USER:PASSWORD@ before the host if the proxy asks for them), or unset it.' });
  }
  const shown = `${url.protocol}//${url.host}`;
  if (url.protocol !== 'http:' || url.hostname === '') {
    throw new AzbkError('AZBK_BAD_INPUT', `HTTPS_PROXY names ${shown}: azbk reaches a proxy over plain http:// only (the vault's own TLS goes through it).`, { hint: 'Set it to http://HOST:PORT, or unset it.' });
  }
  let user: string;
  let password: string;
  try {
    [user, password] = [decodeURIComponent(url.username), decodeURIComponent(url.password)];
  } catch {
    throw new AzbkError('AZBK_BAD_INPUT', `HTTPS_PROXY names ${shown}, whose user or password is not valid URL encoding.`, { hint: 'Write a % in them as %25 (and other reserved characters as %XX).' });
  }
  const auth = user === '' && password === '' ? null : `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  return { shown, host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? 80 : Number(url.port), auth };
}

/** Whether NO_PROXY's list names `target`'s host. */
function bypassed(target: URL, list: string): boolean {
  const host = target.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = target.port === '' ? '443' : target.port;
  for (const item of list.split(/[\s,]+/)) {
    if (item === '') continue;
    if (item === '*') return true;
    // host, host:port, [v6 address]:port, or a v6 address alone (its colons are not a port's)
    const lower = item.toLowerCase();
    const bracketed = /^\[([^\]]*)\](?::(\d+))?$/.exec(lower);
    const [bare, itemPort] = bracketed !== null ? [bracketed[1]!, bracketed[2]] : lower.split(':').length === 2 ? (lower.split(':') as [string, string]) : [lower, undefined];
    const name = bare.replace(/^\*?\./, '.');
    if (itemPort !== undefined && itemPort !== port) continue;
    if (host === name.replace(/^\./, '') || (name.startsWith('.') ? host.endsWith(name) : host.endsWith(`.${name}`))) return true;
  }
  return false;
}

/** The code of an error of the proxy itself: it refused the tunnel (its status is in the message). */
export const PROXY_REFUSED = 'AZBK_PROXY_REFUSED';
/** Bytes of the proxy's reply to CONNECT read at most before its end. */
const MAX_REPLY_HEAD = 16 * 1024;

/**
 * A connector that opens a tunnel through `proxy` to the host asked for, then hands it to `inner`
 * (which makes the TLS connection over it and checks the certificate). A proxy that cannot be
 * reached fails as the vault would (ECONNREFUSED and the like: tried again); one that refuses the
 * tunnel fails with PROXY_REFUSED.
 */
export function tunnelConnector(proxy: ProxyConfig, inner: buildConnector.connector, timeoutMs: number): buildConnector.connector {
  return (options, callback) => {
    const socket = net.connect({ host: proxy.host, port: proxy.port });
    let head = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', finish);
      socket.off('close', onClose);
      if (err !== null) {
        socket.destroy();
        callback(err, null);
        return;
      }
      inner({ ...options, httpSocket: socket } as Parameters<buildConnector.connector>[0], callback);
    };
    const timer = setTimeout(() => finish(Object.assign(new Error(`the proxy ${proxy.shown} did not open a tunnel within ${timeoutMs} ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' })), timeoutMs);
    const onClose = () => finish(Object.assign(new Error(`the proxy ${proxy.shown} closed the connection`), { code: 'ECONNRESET' }));
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_REPLY_HEAD) finish(Object.assign(new Error(`the proxy ${proxy.shown} sent no reply to CONNECT`), { code: PROXY_REFUSED }));
        return;
      }
      const status = /^HTTP\/1\.[01] (\d{3})([^\r\n]*)/.exec(head.subarray(0, end).toString('latin1'));
      if (status?.[1] !== '200') {
        const said = status === null ? 'no HTTP reply' : `${status[1]}${status[2]!.replace(/[^\x20-\x7e]/g, '').slice(0, 80)}`;
        finish(Object.assign(new Error(`the proxy ${proxy.shown} refused the tunnel (${said.trim()})`), { code: PROXY_REFUSED }));
        return;
      }
      // The vault speaks only once spoken to (TLS begins with this side): anything after the
      // reply is the proxy's, and not a tunnel.
      socket.pause();
      if (head.length > end + 4) finish(Object.assign(new Error(`the proxy ${proxy.shown} sent more than its reply to CONNECT`), { code: PROXY_REFUSED }));
      else finish(null);
    };
    // Its code kept (what is tried again goes by it), the proxy named: the vault was not the one out of reach.
    socket.on('error', (err) => finish(Object.assign(err, { proxy: proxy.shown })));
    socket.on('close', onClose);
    socket.on('data', onData);
    socket.once('connect', () => {
      const target = `${options.hostname.includes(':') ? `[${options.hostname}]` : options.hostname}:${options.port || 443}`;
      const lines = [`CONNECT ${target} HTTP/1.1`, `Host: ${target}`, ...(proxy.auth === null ? [] : [`Proxy-Authorization: ${proxy.auth}`]), '', ''];
      socket.write(lines.join('\r\n'));
    });
  };
}
