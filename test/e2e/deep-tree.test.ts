/**
 * A folder tree deeper than anyone keeps, as any user who may write in an included folder can
 * make one: the folders past the depth limit are skipped and listed, everything else is backed
 * up, and the backup ends as it should (exit 3), not with an overflowed stack.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_FOLDER_DEPTH } from '../../src/agent/folder-listing.js';
import { toSegments } from '../../src/agent/fspath.js';
import { expectExit, expectNoStack, parseJson, setupMachine } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

describe('a very deep folder tree', () => {
  it('is backed up down to the depth limit; the rest is skipped and listed (exit 3), and the point restores', async () => {
    const root = await makeTempDir('azbk-deep-');
    const src = path.join(root, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'top.txt'), 'top\n');
    // 1,300 levels: the walk used to overflow its stack at about 1,100.
    const levels = 1300;
    const deepest = path.join(src, 'trap', ...Array<string>(levels).fill('a'));
    await fs.mkdir(deepest, { recursive: true });
    await fs.writeFile(path.join(deepest, 'bottom.txt'), 'bottom\n');
    const m = await setupMachine(root);

    const r = await m.run(['backup', '--now', '--include', src, '--json'], { timeout: 120_000 });
    expectExit(r, 3);
    expectNoStack(r);
    const res = parseJson(r);
    const first = path.join(src, 'trap', ...Array<string>(MAX_FOLDER_DEPTH + 1 - toSegments(path.join(src, 'trap')).length).fill('a'));
    expect(toSegments(first)).toHaveLength(MAX_FOLDER_DEPTH + 1);
    expect(res.skipped).toEqual([{ path: first, reason: `more than ${MAX_FOLDER_DEPTH} folders deep: not backed up` }]);
    expect(res.stats.files).toBe(1);

    const target = path.join(root, 'out');
    expectExit(await m.run(['restore', '--point', 'latest', '--target', target], { timeout: 120_000 }), 0);
    expect(await fs.readFile(path.join(target, src, 'top.txt'), 'utf8')).toBe('top\n');
    const last = path.join(target, path.dirname(first));
    expect(await fs.readdir(last)).toEqual([]);

    // Again, with the scan worker comparing folders from the far end: the same.
    const again = await m.run(['backup', '--now', '--include', src, '--json'], { timeout: 120_000 });
    expectExit(again, 3);
    expect(parseJson(again).skipped).toEqual(res.skipped);
  }, 240_000);
});
