/** Which existing folders a restore refuses to write below: others could swap what it makes there. */
import { describe, expect, it } from 'vitest';
import { untrusted } from '../../src/agent/restore-target.js';

const me = process.getuid?.() ?? 0;

describe('untrusted', () => {
  it('refuses a folder anyone may write in and that is not sticky, and one of another user, on Unix', () => {
    expect(untrusted({ mode: 0o40755, uid: me }, 'linux')).toBeNull();
    expect(untrusted({ mode: 0o41777, uid: 0 }, 'linux')).toBeNull(); // /tmp
    expect(untrusted({ mode: 0o40777, uid: me }, 'linux')).toMatch(/anyone may rename/);
    expect(untrusted({ mode: 0o40777, uid: me }, 'darwin')).toMatch(/anyone may rename/);
    if (me !== 0) expect(untrusted({ mode: 0o40755, uid: me + 1 }, 'linux')).toMatch(/belongs to another user/);
  });

  it('takes no view on Windows, where the mode shows no permissions (Node reports 0666 for every folder)', () => {
    expect(untrusted({ mode: 0o40666, uid: 0 }, 'win32')).toBeNull();
  });
});
