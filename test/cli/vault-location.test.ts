/** The address of a vault service, as --endpoint gives it to the credentials agents register with. */
import { describe, expect, it } from 'vitest';
import { parseHttpsEndpoint } from '../../src/cli/vault-location.js';

describe('--endpoint', () => {
  it('takes a plain https address, with a path prefix the service sits under', () => {
    expect(parseHttpsEndpoint('https://backup.example:8443')).toBe('https://backup.example:8443');
    expect(parseHttpsEndpoint('https://backup.example:8443/')).toBe('https://backup.example:8443');
    expect(parseHttpsEndpoint('https://proxy.example/azbk/')).toBe('https://proxy.example/azbk');
  });

  it('refuses what agents could not use: another scheme, a user, a query, or the API version agents add themselves', () => {
    for (const bad of ['http://backup.example', 'https://ann@backup.example', 'https://backup.example/?x=1', 'backup.example:8443']) {
      expect(() => parseHttpsEndpoint(bad), bad).toThrow(expect.objectContaining({ code: 'AZBK_BAD_INPUT' }));
    }
    expect(() => parseHttpsEndpoint('https://127.0.0.1:18443/v1')).toThrow(expect.objectContaining({ message: expect.stringContaining('without its API version: https://127.0.0.1:18443, not') }));
    expect(() => parseHttpsEndpoint('https://proxy.example/azbk/v1/')).toThrow(expect.objectContaining({ message: expect.stringContaining('https://proxy.example/azbk, not') }));
  });
});
