/** Which proxy, if any, reaches a vault service: HTTPS_PROXY and NO_PROXY as other tools read them. */
import { describe, expect, it } from 'vitest';
import { proxyFor } from '../../src/vault/proxy.js';

const vault = new URL('https://backup.example.com:8443');

describe('proxy from the environment', () => {
  it('is none without HTTPS_PROXY, and the one named (upper or lower case) with it', () => {
    expect(proxyFor(vault, {})).toBeNull();
    expect(proxyFor(vault, { HTTPS_PROXY: '  ' })).toBeNull();
    expect(proxyFor(vault, { HTTPS_PROXY: 'http://proxy.corp:3128' })).toEqual({ shown: 'http://proxy.corp:3128', host: 'proxy.corp', port: 3128, auth: null });
    expect(proxyFor(vault, { https_proxy: 'proxy.corp:8080' })).toMatchObject({ host: 'proxy.corp', port: 8080 });
    expect(proxyFor(vault, { HTTPS_PROXY: 'http://[::1]' })).toMatchObject({ host: '::1', port: 80 });
  });

  it('sends a user and password as Basic authorization, and never shows them', () => {
    const p = proxyFor(vault, { HTTPS_PROXY: 'http://ann:s%40cret@proxy.corp:3128' })!;
    expect(p.auth).toBe(`Basic ${Buffer.from('ann:s@cret').toString('base64')}`);
    expect(p.shown).toBe('http://proxy.corp:3128');
  });

  it('reaches the hosts NO_PROXY names directly', () => {
    const direct = (noProxy: string, target = vault) => proxyFor(target, { HTTPS_PROXY: 'http://proxy.corp:3128', NO_PROXY: noProxy }) === null;
    expect(direct('*')).toBe(true);
    expect(direct('backup.example.com')).toBe(true);
    expect(direct('example.com')).toBe(true);
    expect(direct('.example.com')).toBe(true);
    expect(direct('*.example.com')).toBe(true);
    expect(direct('localhost, backup.example.com:8443')).toBe(true);
    expect(direct('backup.example.com:443')).toBe(false);
    expect(direct('ample.com')).toBe(false);
    expect(direct('other.example.com,localhost')).toBe(false);
    expect(direct('127.0.0.1', new URL('https://127.0.0.1:9000'))).toBe(true);
    expect(direct('::1', new URL('https://[::1]:9000'))).toBe(true);
    expect(proxyFor(vault, { HTTPS_PROXY: 'http://proxy.corp:3128', no_proxy: 'example.com' })).toBeNull();
  });

  it('refuses a proxy it cannot use', () => {
    expect(() => proxyFor(vault, { HTTPS_PROXY: 'https://proxy.corp:3128' })).toThrow(expect.objectContaining({ code: 'AZBK_BAD_INPUT', message: expect.stringContaining('plain http://') }));
    expect(() => proxyFor(vault, { HTTPS_PROXY: 'http://' })).toThrow(expect.objectContaining({ code: 'AZBK_BAD_INPUT' }));
    // The password is not in the message.
    expect(() => proxyFor(vault, { HTTPS_PROXY: 'socks5://ann:hunter22@proxy.corp:1080' })).toThrow(expect.not.objectContaining({ message: expect.stringContaining('hunter22') }));
    // A % that is not URL encoding, in the password: said so, without it.
    expect(() => proxyFor(vault, { HTTPS_PROXY: 'http://ann:50%off@proxy.corp:3128' })).toThrow(
      expect.objectContaining({ code: 'AZBK_BAD_INPUT', message: expect.stringMatching(/^HTTPS_PROXY names http:\/\/proxy\.corp:3128, whose user or password is not valid URL encoding\.$/) }),
    );
  });
});
