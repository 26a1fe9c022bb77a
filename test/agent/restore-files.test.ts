/** The mode a restored file is created with: never more open than the file will end up. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { creationMode, openTemp, settle } from '../../src/agent/restore-files.js';
import { makeTempDir } from '../helpers/tmp.js';

describe('creationMode', () => {
  it('keeps a mode the umask leaves whole and the owner can write; else owner-only until settled', () => {
    expect(creationMode(0o644, 0o022)).toBe(0o644);
    expect(creationMode(0o755, 0o022)).toBe(0o755);
    expect(creationMode(0o600, 0o077)).toBe(0o600);
    expect(creationMode(0o664, 0o022)).toBe(0o600); // the umask would take the group's write
    expect(creationMode(0o644, 0o077)).toBe(0o600);
    expect(creationMode(0o444, 0o022)).toBe(0o600); // opened again for writing by a later range
    expect(creationMode(0o4755, 0o022)).toBe(0o600); // set-user-ID: set by chmod only
    expect(creationMode(0o1777, 0o000)).toBe(0o600);
  });

  it.skipIf(process.platform === 'win32')('a file created with it and settled has exactly its backed-up mode', async () => {
    const dir = await makeTempDir('azbk-restore-files-');
    const umask = process.umask(); // what the restore pool reads
    for (const mode of [0o644, 0o664, 0o444, 0o750, 0o600]) {
      const tmp = path.join(dir, `t${mode.toString(8)}`);
      const created = creationMode(mode, umask);
      const fd = openTemp(tmp, true, created);
      expect(fs.fstatSync(fd).mode & 0o7777).toBe(created); // never more open than it ends
      settle(fd, mode, '1700000000000000000', created);
      fs.closeSync(fd);
      expect(fs.statSync(tmp).mode & 0o7777).toBe(mode);
    }
  });
});
