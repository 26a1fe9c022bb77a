/** The name of the copy `restore --conflict copy` makes beside an item it must not overwrite. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyName } from '../../src/agent/copy-name.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'azbk-copy-name-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const when = new Date(2026, 11, 4, 9, 5);

describe('copyName', () => {
  it('stamps the local minute, and numbers the copy when that name is taken on disk or by this restore', async () => {
    const dest = path.join(dir, 'report.txt');
    expect(await copyName(dest, when, new Set())).toBe(path.join(dir, '2026-12-04 09-05 Copy of report.txt'));
    fs.writeFileSync(path.join(dir, '2026-12-04 09-05 Copy of report.txt'), '');
    expect(await copyName(dest, when, new Set())).toBe(path.join(dir, '2026-12-04 09-05 Copy of report.txt (2)'));
    expect(await copyName(dest, when, new Set([path.join(dir, '2026-12-04 09-05 Copy of report.txt (2)')]))).toBe(path.join(dir, '2026-12-04 09-05 Copy of report.txt (3)'));
  });

  it('cuts a long name to what the file system takes, keeping its extension and whole characters', async () => {
    const long = `${'é'.repeat(120)}.tar.gz`; // 240 + 3 + 4 bytes
    const name = path.basename(await copyName(path.join(dir, long), when, new Set()));
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255);
    expect(name.startsWith('2026-12-04 09-05 Copy of éé')).toBe(true);
    expect(name.endsWith('é.gz')).toBe(true);
    expect(name).not.toContain('\ufffd');
    fs.writeFileSync(path.join(dir, name), ''); // the file system takes it
  });
});
