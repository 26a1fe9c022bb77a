/** Where AZBK_HOME is when it is not set. */
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { azbkHome } from '../../src/shared/paths.js';

describe('azbkHome', () => {
  it('is AZBK_HOME made absolute, else on Linux under an absolute XDG_CONFIG_HOME, and never under a relative one', () => {
    expect(azbkHome({ AZBK_HOME: 'rel/home' })).toBe(path.resolve('rel/home'));
    if (process.platform !== 'linux') return;
    expect(azbkHome({ XDG_CONFIG_HOME: '/etc/xdg-test' })).toBe('/etc/xdg-test/azbk');
    expect(azbkHome({ XDG_CONFIG_HOME: 'relxdg' })).toBe(path.join(os.homedir(), '.config', 'azbk'));
    expect(azbkHome({})).toBe(path.join(os.homedir(), '.config', 'azbk'));
  });
});
