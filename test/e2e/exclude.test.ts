/**
 * Leaving things out of a backup (`--exclude`, or the policy's patterns): what matches is neither
 * read nor in the point, a folder left out is not looked into, and a change of the patterns is
 * seen by the next backup, which then examines every folder again.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectExit, expectNoStack, parseJson, setupMachine, type Machine } from '../helpers/cli.js';
import { listFiles } from '../helpers/fs-tree.js';
import { makeTempDir } from '../helpers/tmp.js';

/** A project tree: sources, a node_modules folder deep inside, build output, editor leftovers. */
async function project(root: string): Promise<string> {
  const src = path.join(root, 'proj');
  const files: Record<string, string> = {
    'README.md': 'readme\n',
    'src/main.ts': 'main\n',
    'src/main.ts.swp': 'swap\n',
    'src/lib/util.ts': 'util\n',
    'app/node_modules/dep/index.js': 'dep\n',
    'app/package.json': '{}\n',
    'build/out/app.js': 'built\n',
    'build/notes.txt': 'notes\n',
  };
  for (const [rel, text] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(src, rel)), { recursive: true });
    await fs.writeFile(path.join(src, rel), text);
  }
  return src;
}

/** A test folder with the project tree in it (`src`), and a machine registered with a vault there. */
async function projectMachine(prefix: string): Promise<{ root: string; src: string; m: Machine }> {
  const root = await makeTempDir(prefix);
  const src = await project(root);
  return { root, src, m: await setupMachine(root) };
}

/** The files of the latest point under `src`, relative to it, restored into a fresh folder. */
async function latestFiles(m: Machine, root: string, src: string, name: string): Promise<string[]> {
  const target = path.join(root, name);
  expectExit(await m.run(['restore', '--point', 'latest', '--target', target]), 0);
  const base = path.join(target, src);
  return (await listFiles(base)).map((f) => path.relative(base, f)).sort();
}

describe('exclusions', () => {
  it('leave out names and paths given with --exclude, and a change of them is backed up as such', async () => {
    const { root, src, m } = await projectMachine('azbk-exclude-');

    const first = await m.run(['backup', '--now', '--include', src, '--exclude', 'node_modules', '*.swp', 'build/out', '--json']);
    expectExit(first, 0);
    expect(parseJson(first).stats).toMatchObject({ files: 5 });
    expect(await latestFiles(m, root, src, 'r1')).toEqual(['README.md', 'app/package.json', 'build/notes.txt', 'src/lib/util.ts', 'src/main.ts']);
    // The folder left out is not even listed: nothing of it in the point.
    const ls = await m.run(['ls', '--point', 'latest', '-r', src]);
    expect(ls.stdout).not.toContain('node_modules');
    expect(ls.stdout).not.toMatch(/build\/out/);

    // The same patterns again (another order): the scan worker lists folders as the walk does,
    // and a new file that matches is left out as well.
    await fs.writeFile(path.join(src, 'src', 'lib', 'util.ts.swp'), 'swap\n');
    const same = await m.run(['backup', '--now', '--include', src, '--exclude', 'build/out', '*.swp', 'node_modules', '--json']);
    expectExit(same, 0);
    expect(parseJson(same).scan.reason).not.toContain('exclusions');
    expect(await latestFiles(m, root, src, 'r2')).toEqual(['README.md', 'app/package.json', 'build/notes.txt', 'src/lib/util.ts', 'src/main.ts']);

    // Other patterns: every folder is examined again, so what is no longer left out comes in, and
    // what now is goes, also in folders where nothing else changed.
    const other = await m.run(['backup', '--now', '--include', src, '--exclude', '/' + path.relative('/', path.join(src, 'src', 'lib')), '--json']);
    expectExit(other, 0);
    expect(parseJson(other).scan).toEqual({ mode: 'full', reason: 'the exclusions changed since the last backup' });
    expect(await latestFiles(m, root, src, 'r3')).toEqual(['README.md', 'app/node_modules/dep/index.js', 'app/package.json', 'build/notes.txt', 'build/out/app.js', 'src/main.ts', 'src/main.ts.swp']);

    // None: everything.
    const all = await m.run(['backup', '--now', '--include', src, '--json']);
    expect(parseJson(all).scan.reason).toBe('the exclusions changed since the last backup');
    expect(await latestFiles(m, root, src, 'r4')).toHaveLength(9);
  }, 60_000);

  it('come from the policy for backups that name none, scheduled ones included', async () => {
    const { root, src, m } = await projectMachine('azbk-exclude-policy-');

    const set = await m.run(['policy', 'set', '--include', src, '--exclude', 'node_modules', 'out/', '--json']);
    expectExit(set, 0);
    expect(parseJson(set).exclude).toEqual(['node_modules', 'out/']);
    expect((await m.run(['policy', 'show'])).stdout).toContain('Exclude: node_modules, out/');
    expectExit(await m.run(['backup', '--now']), 0);
    expect(await latestFiles(m, root, src, 'r1')).toEqual(['README.md', 'app/package.json', 'build/notes.txt', 'src/lib/util.ts', 'src/main.ts', 'src/main.ts.swp']);
    const lastBackup = async () => (parseJson(await m.run(['jobs', '--json'])).jobs as { kind: string; policyPaths: boolean }[]).filter((j) => j.kind === 'backup').at(-1)!;
    expect((await lastBackup()).policyPaths).toBe(true);

    // --exclude on the command line replaces the policy's, and such a backup is not the policy's.
    expectExit(await m.run(['backup', '--now', '--exclude', '*.swp']), 0);
    expect(await latestFiles(m, root, src, 'r2')).toHaveLength(7);
    expect((await lastBackup()).policyPaths).toBe(false);
    const catchUp = await m.run(['backup', '--now', '--catch-up', '--exclude', '*.swp']);
    expectExit(catchUp, 2);
    expect(catchUp.stderr).toContain('takes no --exclude');

    // Both at once: refused, in either order, and the policy left as it was.
    for (const args of [['--exclude', 'x', '--no-exclude'], ['--no-exclude', '--exclude=x']]) {
      const both = await m.run(['policy', 'set', ...args]);
      expectExit(both, 2);
      expect(both.stderr).toContain('--exclude and --no-exclude contradict each other');
    }
    expect(parseJson(await m.run(['policy', 'show', '--json'])).exclude).toBeDefined();

    // --no-exclude: nothing left out any more.
    const none = await m.run(['policy', 'set', '--no-exclude', '--json']);
    expectExit(none, 0);
    expect(parseJson(none).exclude).toBeUndefined();
    expectExit(await m.run(['backup', '--now']), 0);
    expect(await latestFiles(m, root, src, 'r3')).toHaveLength(8);
  }, 60_000);

  it('skips and lists an include inside another one that its walk would not reach: left out, or below a link', async () => {
    const { root, src, m } = await projectMachine('azbk-exclude-nested-');
    const outside = path.join(root, 'outside');
    await fs.mkdir(path.join(outside, 'doc'), { recursive: true });
    await fs.writeFile(path.join(outside, 'doc', 'x.txt'), 'outside\n');
    await fs.symlink(outside, path.join(src, 'out'));
    const dep = path.join(src, 'app', 'node_modules', 'dep');
    const swap = path.join(src, 'src', 'main.ts.swp');
    const doc = path.join(src, 'out', 'doc');
    const r = await m.run(['backup', '--now', '--include', src, dep, swap, doc, '--exclude', 'node_modules', '*.swp', '--json']);
    expectExit(r, 3);
    expect(parseJson(r).skipped).toEqual([
      { path: dep, reason: `below ${path.join(src, 'app', 'node_modules')}, which is left out by the exclusions, in the included ${src}` },
      { path: swap, reason: `it is left out by the exclusions, in the included ${src}` },
      { path: doc, reason: `below ${path.join(src, 'out')}, a link in the included ${src} that is backed up as a link (include the folder it points to instead)` },
    ]);
    expect(await latestFiles(m, root, src, 'r1')).toEqual(['README.md', 'app/package.json', 'build/notes.txt', 'build/out/app.js', 'src/lib/util.ts', 'src/main.ts']);
  }, 60_000);

  it.skipIf(process.platform !== 'linux')('match names that are not UTF-8 as shown, with U+FFFD: such a name left out is not skipped as one azbk cannot store', async () => {
    const { root, src, m } = await projectMachine('azbk-exclude-bytes-');
    const named = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
    await fs.writeFile(named(src, '/src/r', [0xe9], 'sum', [0xe9], '.tmp'), 'left over\n');
    await fs.mkdir(named(src, '/caf', [0xe9]));
    await fs.writeFile(named(src, '/caf', [0xe9], '/inside.txt'), 'inside\n');

    const r = await m.run(['backup', '--now', '--include', src, '--exclude', '*.tmp', 'caf?', '--json']);
    expectExit(r, 0);
    expect(parseJson(r).skipped).toEqual([]);
    expect(await latestFiles(m, root, src, 'r1')).toHaveLength(8);

    // One the exclusions do not match is still skipped and listed, as a name azbk cannot store.
    const partial = await m.run(['backup', '--now', '--include', src, '--exclude', '*.tmp', '--json']);
    expectExit(partial, 3);
    expect(parseJson(partial).skipped).toEqual([{ path: path.join(src, 'caf\uFFFD'), reason: 'its name is not valid UTF-8 text, which azbk cannot store (its bytes: 63 61 66 e9)' }]);
  }, 60_000);

  it('refuses a pattern that is not one, before anything changes', async () => {
    const { src, m } = await projectMachine('azbk-exclude-bad-');
    for (const args of [['backup', '--now', '--include', src, '--exclude', '[z-a]'], ['backup', '--now', '--include', src, '--exclude', ''], ['policy', 'set', '--include', src, '--exclude', 'a\\']]) {
      const r = await m.run(args);
      expectExit(r, 2);
      expectNoStack(r);
      expect(r.stderr).toContain('AZBK_BAD_INPUT');
    }
    expect(parseJson(await m.run(['points', '--json'])).points).toEqual([]);
    await expect(fs.stat(path.join(m.home, 'policy.json'))).rejects.toThrow();

    // A policy file whose patterns were damaged by hand is refused as damaged.
    await fs.writeFile(path.join(m.home, 'policy.json'), JSON.stringify({ version: 1, include: [src], exclude: ['[z-a]'] }), { mode: 0o600 });
    const damaged = await m.run(['backup', '--now']);
    expectExit(damaged, 2);
    expect(damaged.stderr).toMatch(/policy file .* is damaged/);
    // An empty list, written by hand, leaves nothing out.
    await fs.writeFile(path.join(m.home, 'policy.json'), JSON.stringify({ version: 1, include: [src], exclude: [] }), { mode: 0o600 });
    expectExit(await m.run(['backup', '--now']), 0);
  }, 60_000);
});
