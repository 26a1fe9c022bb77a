/** The name of the copy `restore --conflict copy` makes beside an item it must not overwrite. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/agent/backup.js';
import { copyName } from '../../src/agent/copy-name.js';
import { runRestore } from '../../src/agent/restore.js';
import { createMachine } from '../helpers/machine.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'azbk-copy-name-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const when = new Date(2026, 11, 4, 9, 5);

describe('copyName', () => {
  it('stamps the local minute, and numbers the copy when that name is taken on disk or by this restore', async () => {
    const dest = path.join(dir, 'report.txt');
    expect(await copyName(dest, when, () => false)).toBe(path.join(dir, '2026-12-04 09-05 Copy of report.txt'));
    fs.writeFileSync(path.join(dir, '2026-12-04 09-05 Copy of report.txt'), '');
    expect(await copyName(dest, when, () => false)).toBe(path.join(dir, '2026-12-04 09-05 Copy of report.txt (2)'));
    expect(await copyName(dest, when, (c) => c === path.join(dir, '2026-12-04 09-05 Copy of report.txt (2)'))).toBe(path.join(dir, '2026-12-04 09-05 Copy of report.txt (3)'));
  });

  it('cuts a long name to what the file system takes, keeping its extension and whole characters', async () => {
    const long = `${'é'.repeat(120)}.tar.gz`; // 240 + 3 + 4 bytes
    const name = path.basename(await copyName(path.join(dir, long), when, () => false));
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
    expect(name.startsWith('2026-12-04 09-05 Copy of éé')).toBe(true);
    expect(name.endsWith('é.gz')).toBe(true);
    expect(name).not.toContain('\ufffd');
    fs.writeFileSync(path.join(dir, name), ''); // the file system takes it
  });
});

describe('restore --conflict copy', () => {
  it('gives a copy a name the point itself does not use in that folder (it holds the copies an earlier restore made)', async () => {
    const m = await createMachine();
    const src = path.join(m.dir, 'src');
    fs.mkdirSync(src);
    const a = path.join(src, 'a');
    const earlier = path.join(src, '2026-12-04 09-05 Copy of a');
    fs.writeFileSync(a, 'backed up\n');
    fs.writeFileSync(earlier, 'an earlier copy\n');
    await runBackup(m.ctx, { include: [src] });
    fs.rmSync(earlier);
    fs.writeFileSync(a, 'changed since\n');

    const r = await runRestore(m.ctx, { point: 'latest', target: null, paths: [src], conflict: 'copy', now: () => when });
    expect(r.failed).toEqual([]);
    expect(r.conflicts).toEqual([{ path: a, action: 'copied', restoredAs: `${earlier} (2)` }]);
    expect(fs.readFileSync(a, 'utf8')).toBe('changed since\n');
    expect(fs.readFileSync(earlier, 'utf8')).toBe('an earlier copy\n');
    expect(fs.readFileSync(`${earlier} (2)`, 'utf8')).toBe('backed up\n');
  });
});
