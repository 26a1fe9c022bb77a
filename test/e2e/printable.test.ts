/**
 * Names with control characters (an escape sequence, a carriage return) are shown escaped as
 * \xNN by backup, points and restore, never sent to the terminal as they are; --json keeps them.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectExit, parseJson, setupMachine } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

describe.skipIf(process.platform === 'win32')('names with control characters', () => {
  it('are printed escaped, and kept as they are in --json', async () => {
    const tmp = await makeTempDir('azbk-printable-');
    const folder = path.join(tmp, 'clear\x1b[2Jscreen');
    await fs.mkdir(folder);
    await fs.writeFile(path.join(folder, 'f.txt'), 'x\n');
    expect(spawnSync('mkfifo', [path.join(folder, 'pipe\rNothing to see')]).status).toBe(0);
    const m = await setupMachine(tmp);

    const b = await m.run(['backup', '--now', '--include', folder]);
    expectExit(b, 0);
    expect(b.stdout).toContain('warning: ' + path.join(tmp, 'clear\\x1b[2Jscreen', 'pipe\\x0dNothing to see') + ': special file');
    const p = await m.run(['points']);
    expectExit(p, 0);
    expect(p.stdout).toContain('clear\\x1b[2Jscreen');
    for (const out of [b.stdout, p.stdout]) expect(out).not.toMatch(/[\x1b\r]/);
    expect(parseJson(await m.run(['points', '--json'])).points[0].paths).toEqual([folder]);

    // A restore that meets one where a folder is in the way lists it escaped too.
    const target = path.join(tmp, 'r');
    await fs.mkdir(path.join(target, folder), { recursive: true });
    await fs.mkdir(path.join(target, folder, 'f.txt'));
    const r = await m.run(['restore', '--point', 'latest', '--target', target, '--conflict', 'overwrite']);
    expectExit(r, 3);
    expect(r.stdout).toContain(`${path.join(tmp, 'clear\\x1b[2Jscreen', 'f.txt')}:`);
    expect(r.stdout).not.toMatch(/[\x1b\r]/);

    // An error naming what was typed is one line too: a newline in a path forges no second line.
    const typed = path.join(tmp, 'no\nazbk: error FAKE: \x1b[33m');
    const e = await m.run(['backup', '--now', '--include', typed]);
    expectExit(e, 2);
    expect(e.stderr.split('\n').filter((l) => l !== '')).toHaveLength(2);
    expect(e.stderr).toMatch(/^azbk: error AZBK_PATH_NOT_FOUND: .*no\\x0aazbk: error FAKE: \\x1b\[33m/);
    expect(e.stderr).not.toMatch(/\x1b/);

    // Paths a command was given and says back when it ends well are escaped too.
    const policy = await m.run(['policy', 'set', '--include', folder]);
    const restored = await m.run(['restore', '--point', 'latest', '--target', path.join(tmp, 'to\x1b[2J'), '--path', path.join(folder, 'f.txt')]);
    const status = await m.run(['status']);
    for (const r of [policy, restored, status]) {
      expectExit(r, 0);
      expect(r.stdout).toContain('\\x1b[2J');
      expect(r.stdout).not.toMatch(/\x1b/);
    }
  }, 60_000);

  it('never show two names alike: a name holding an escape as text is not shown as the name it spells', async () => {
    const tmp = await makeTempDir('azbk-printable-');
    const folder = path.join(tmp, 'spoof');
    await fs.mkdir(folder);
    const names = ['a\nb', 'a\\x0ab', 'a\\x5cx0ab', 'x\u202ey', 'x\\u{202e}y', 'back\\slash', 'xy', 'x\u200by', 'x\ufeffy'];
    for (const n of names) await fs.writeFile(path.join(folder, n), n);
    const m = await setupMachine(tmp);
    expectExit(await m.run(['backup', '--now', '--include', folder]), 0);
    const ls = await m.run(['ls', '--point', 'latest', folder]);
    expectExit(ls, 0);
    const shown = ls.stdout.split('\n').filter((l) => l.includes(`${folder}/`)).map((l) => l.slice(l.indexOf(`${folder}/`) + folder.length + 1));
    expect(shown).toHaveLength(names.length);
    expect(new Set(shown).size).toBe(names.length);
    expect(shown).toContain('a\\x0ab'); // the newline
    expect(shown).toContain('a\\x5cx0ab'); // the backslash
    expect(shown).toContain('back\\slash'); // a backslash before anything else is shown as it is
    expect(shown).toContain('x\\u{200b}y'); // a zero-width space: shown as xy before, like the name xy
  }, 60_000);
});
