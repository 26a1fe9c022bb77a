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

  it("is on Windows in the user's own profile (LOCALAPPDATA), never in ProgramData, which every user may read", () => {
    expect(azbkHome({ LOCALAPPDATA: 'C:\\Users\\ann\\AppData\\Local', ProgramData: 'C:\\ProgramData' }, 'win32')).toBe('C:\\Users\\ann\\AppData\\Local\\azbk');
    for (const env of [{ ProgramData: 'C:\\ProgramData' }, { LOCALAPPDATA: 'rel\\local' }]) {
      const home = azbkHome(env, 'win32');
      expect(home.endsWith('\\AppData\\Local\\azbk')).toBe(true);
      expect(home).not.toContain('ProgramData');
    }
  });
});
