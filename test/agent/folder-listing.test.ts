/**
 * Listing a folder the way the backup's walk does: only the folder its parent listed, never one
 * put in its place (by a link to a folder outside, or another folder), and on Linux through the
 * folder opened, whatever its path names meanwhile.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { entryStat, fingerprint, listFolder, type Listed } from '../../src/agent/folder-listing.js';
import { REPLACED } from '../../src/agent/pipeline/protocol.js';
import { makeTempDir } from '../helpers/tmp.js';

const skipNone = (p: string, why: unknown) => {
  throw new Error(`skipped ${p}: ${String(why)}`);
};

describe('listFolder', () => {
  it('lists the folder its parent listed, and refuses a link or another folder in its place', async () => {
    const root = await makeTempDir('azbk-listing-');
    const dir = path.join(root, 'd');
    const outside = path.join(root, 'outside');
    fs.mkdirSync(dir);
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(dir, 'mine'), 'x');
    fs.writeFileSync(path.join(outside, 'secret'), 'y');
    const self = entryStat(fs.lstatSync(dir, { bigint: true }));
    const { listed, complete } = listFolder(dir, skipNone, self);
    expect(complete).toBe(true);
    expect(listed.map((l) => [l.abs, l.st.kind, l.st.size])).toEqual([[path.join(dir, 'mine'), 'file', 1]]);

    fs.renameSync(dir, path.join(root, 'd-moved'));
    fs.symlinkSync(outside, dir);
    // opened without following it: ENOTDIR on Linux (O_DIRECTORY), ELOOP elsewhere
    expect(() => listFolder(dir, skipNone, self)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^(ENOTDIR|ELOOP)$/) }));
    fs.unlinkSync(dir);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'other'), 'z');
    expect(() => listFolder(dir, skipNone, self)).toThrow(expect.objectContaining({ code: REPLACED }));
    // Without its lstat (as the scan worker lists), the path is listed as it is.
    expect(listFolder(dir, skipNone).listed.map((l) => l.name)).toEqual(['other']);
  });
});

describe('fingerprint', () => {
  // Folder caches hold fingerprints from earlier backups: however it is computed, a fingerprint
  // must stay the SHA-256 of one line per entry, or every folder is taken as changed.
  it('is the SHA-256 of one line per entry, also for a folder whose text is hashed in pieces', () => {
    const st = { kind: 'file', size: 5, mtime: '1700000000123456789', ctime: '1700000000987654321', ino: '42', mode: 0o644, dev: '2049', nlink: 1 } as const;
    const listed: Listed[] = [];
    for (let i = 0; i < 5000; i++) listed.push({ abs: `/d/f${i}`, name: `f${i}`, st: { ...st, ino: String(i) } });
    listed.push({ abs: '/d/linked', name: 'linked', st: { ...st, nlink: 2 } });
    listed.push({ abs: '/d/sub', name: 'sub', st: { ...st, kind: 'dir' } });
    const subtrees = new Map([['sub', { tree: 'ab'.repeat(32) }]]);
    const read = { size: 7, mtime: '1', ctime: '2', ino: '3', content: [] };
    let text = '';
    for (const { name, st: s } of listed) {
      const id = name === 'f7' ? read : s;
      text += `${name}\0${s.kind}\0${s.mode}\0${id.mtime}\0${id.ctime}\0${id.ino}${s.nlink > 1 ? `@${s.dev}` : ''}\0${id.size}\0${s.kind === 'dir' ? 'ab'.repeat(32) : ''}\n`;
    }
    expect(text.length).toBeGreaterThan(3 * 64 * 1024);
    const fp = fingerprint(listed, subtrees, (name) => (name === 'f7' ? read : undefined));
    expect(fp?.toString('hex')).toBe(createHash('sha256').update(text).digest('hex'));
    // A subfolder that could not be backed up: no fingerprint.
    expect(fingerprint(listed, new Map([['sub', null]]))).toBeNull();
  });
});
