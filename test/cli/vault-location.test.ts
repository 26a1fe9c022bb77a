/** The address of a vault service, as --endpoint gives it to the credentials agents register with. */
import { describe, expect, it } from 'vitest';
import { parseHttpsEndpoint } from '../../src/cli/vault-location.js';
import type { AzbkError } from '../../src/shared/errors.js';

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

  it('refuses port 0, where no service can be reached', () => {
    expect(() => parseHttpsEndpoint('https://backup.example:0')).toThrow(expect.objectContaining({ code: 'AZBK_BAD_INPUT', message: expect.stringContaining('port 0') }));
  });

  it('never says back a user or password given in the address, whether it parses or not', () => {
    const cases: [string, string][] = [
      ['https://bob7:s3cret@backup.example:8443', 'https://***@backup.example:8443'],
      ['https://bob7:s3cret@backup.example:99999', 'https://***@backup.example:99999'],
      ['https://bob7:s3c@ret@backup.example:0', 'https://***@backup.example:0'],
      ['https://bob7:s3cret@backup.example:8443/v1', 'https://***@backup.example:8443/v1'],
      ['http://bob7:s3cret@backup.example', 'http://***@backup.example'],
      ['https:bob7:s3cret@backup.example', '***@backup.example'],
      ['bob7:s3cret@backup.example:8443', '***@backup.example:8443'],
    ];
    for (const [given, shown] of cases) {
      let err: unknown;
      try {
        parseHttpsEndpoint(given);
      } catch (e) {
        err = e;
      }
      expect(err, given).toMatchObject({ code: 'AZBK_BAD_INPUT', message: expect.stringContaining(shown) });
      expect(`${(err as AzbkError).message} ${(err as AzbkError).hint}`, given).not.toMatch(/bob7|s3c/);
    }
  });
});
