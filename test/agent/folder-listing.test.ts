/**
 * Listing a folder the way the backup's walk does: only the folder its parent listed, never one
 * put in its place (by a link to a folder outside, or another folder), and on Linux through the
 * folder opened, whatever its path names meanwhile.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { entryStat, listFolder } from '../../src/agent/folder-listing.js';
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
