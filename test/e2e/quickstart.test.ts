/** The README's quick start (scripts/quickstart.mjs after the build), run as a user runs it. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectExit, parseJson, REPO, runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

describe('quick start', () => {
  it('makes a vault, registers, sets the policy to FOLDER, backs it up; again makes another point', async () => {
    const tmp = await makeTempDir('azbk-quickstart-');
    const home = path.join(tmp, 'home');
    const folder = path.join(tmp, 'folder');
    await fs.mkdir(folder);
    await fs.writeFile(path.join(folder, 'a.txt'), 'quick start\n');
    const quickstart = (f = folder) =>
      spawnSync(process.execPath, [path.join(REPO, 'scripts', 'quickstart.mjs'), f], { env: { ...process.env, AZBK_HOME: home }, encoding: 'utf8', timeout: 60_000 });
    // A mistyped FOLDER is refused before anything is made: it would have become the policy's path.
    const typo = quickstart(path.join(tmp, 'fodler'));
    expect(typo.status).toBe(2);
    expect(typo.stderr).toContain(`${path.join(tmp, 'fodler')} is not a folder; nothing was done.`);
    // So are a link to a folder (a backup stores it as a link) and a path beneath a file.
    await fs.symlink(folder, path.join(tmp, 'link'));
    expect(quickstart(path.join(tmp, 'link')).status).toBe(2);
    const under = quickstart(path.join(folder, 'a.txt', 'sub'));
    expect(under.status).toBe(2);
    expect(under.stderr).not.toMatch(/^\s+at /m);
    await expect(fs.stat(home)).rejects.toThrow();
    // And AZBK_HOME itself, or a folder in it, which backups leave out.
    await fs.mkdir(path.join(home, 'inside'), { recursive: true, mode: 0o700 });
    await fs.mkdir(path.join(home, '..dots'), { mode: 0o700 }); // in it, whatever its name starts with
    for (const f of [home, path.join(home, 'inside'), path.join(home, '..dots')]) {
      const own = quickstart(f);
      expect(own.status).toBe(2);
      expect(own.stderr).toContain(`is AZBK_HOME (${home}) or in it, which backups leave out; nothing was done.`);
    }
    expect((await fs.readdir(home)).sort()).toEqual(['..dots', 'inside']);
    await fs.rm(home, { recursive: true });
    const first = quickstart();
    expect(first.status, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toMatch(/Recovery point \S+ created/);
    await fs.appendFile(path.join(folder, 'a.txt'), 'changed\n');
    const second = quickstart();
    expect(second.status, second.stdout + second.stderr).toBe(0);
    expect(second.stdout).not.toMatch(/policy set/); // the policy it set is kept

    // A plain backup now backs up FOLDER: the policy names it.
    const plain = await runCli(['backup', '--now', '--json'], { home });
    expectExit(plain, 0);
    expect(parseJson(plain).paths.length).toBe(1);
    const points = parseJson(await runCli(['points', '--json'], { home })).points;
    expect(points).toHaveLength(3);
    expect(points.every((p: { paths: string[] }) => p.paths[0] === folder)).toBe(true);
    expect((await fs.stat(home)).mode & 0o777).toBe(0o700);
    expect((await fs.stat(path.join(home, 'secrets.json'))).mode & 0o777).toBe(0o600);
  }, 120_000);
});
