/**
 * azbk verify through the CLI: a healthy vault passes, with or without reading the data; a
 * damaged chunk is found by --read-data and a missing pack by either, each named by the file it
 * breaks, with exit 1 and the whole report.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backup, BIN, expectExit, expectNoStack, parseJson, setupMachine } from '../helpers/cli.js';
import { vaultObjects, writeRandomFile } from '../helpers/fs-tree.js';
import { makeTempDir } from '../helpers/tmp.js';

interface Report {
  points: number;
  problems: { where: string; what: string }[];
}

describe('azbk verify', () => {
  it('passes a healthy vault and names the files a damaged or missing pack breaks', async () => {
    const tmp = await makeTempDir('azbk-verify-');
    const data = path.join(tmp, 'data');
    await fs.mkdir(path.join(data, 'sub'), { recursive: true });
    await writeRandomFile(path.join(data, 'sub', 'big.bin'), 3 * 1024 * 1024);
    await fs.mkdir(path.join(data, 'empty'));
    const m = await setupMachine(tmp);
    await backup(m, [data]);

    for (const args of [['verify', '--json'], ['verify', '--read-data', '--json']]) {
      const ok = await m.run(args);
      expectExit(ok, 0);
      expect(parseJson<Report>(ok)).toMatchObject({ points: 1, problems: [] });
    }
    expect((await m.run(['verify'])).stdout).toContain('Nothing is wrong.');

    // One byte of the data pack changed: its size is the same, so only reading the data finds it.
    const packs = await vaultObjects(m.vault.dir, 'packs');
    const sizes = await Promise.all(packs.map(async (p) => (await fs.stat(p)).size));
    const dataPack = packs[sizes.indexOf(Math.max(...sizes))]!;
    await fs.chmod(dataPack, 0o600);
    const fh = await fs.open(dataPack, 'r+');
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, 1000);
    await fh.write(Buffer.from([byte[0]! ^ 0xff]), 0, 1, 1000);
    await fh.close();
    expectExit(await m.run(['verify']), 0);
    const damaged = await m.run(['verify', '--read-data', '--json']);
    expectExit(damaged, 4);
    const found = parseJson<Report>(damaged).problems;
    expect(found.length).toBeGreaterThan(0);
    expect(found.every((p) => p.where.endsWith(path.join(data, 'sub', 'big.bin')))).toBe(true);
    expect(damaged.stderr).toContain('problem(s) found');

    // The pack gone: found without reading data, and shown as text.
    const kept = await fs.readFile(dataPack);
    await fs.rm(dataPack);
    const missing = await m.run(['verify']);
    expectExit(missing, 4);
    expectNoStack(missing);
    expect(missing.stdout).toContain(path.join(data, 'sub', 'big.bin'));
    expect(missing.stdout).not.toContain(path.join(data, 'empty'));
    // Put back, so that the next backup can count on it (else it would store big.bin again).
    await fs.writeFile(dataPack, kept);

    // A name with a control character is shown escaped, never sent to the terminal as it is.
    const odd = path.join(data, 'odd\rNothing is wrong.');
    await fs.writeFile(odd, randomBytes(100_000));
    await backup(m, [data]); // a data pack for this file, and a listings pack
    const added = (await vaultObjects(m.vault.dir, 'packs')).filter((p) => !packs.includes(p));
    const addedSizes = await Promise.all(added.map(async (p) => (await fs.stat(p)).size));
    await fs.rm(added[addedSizes.indexOf(Math.max(...addedSizes))]!); // the data pack
    const escaped = await m.run(['verify']);
    expectExit(escaped, 4);
    expect(escaped.stdout).toContain('odd\\x0dNothing is wrong.');
    expect(escaped.stdout).not.toContain('\r');
  }, 60_000);

  // verify --read-data said a new backup stores again what the machine has, but the backup counted
  // on the damaged chunks as stored: its new point was as broken as the old one.
  const flip = async (pack: string) => {
    const fh = await fs.open(pack, 'r+');
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, 100_000);
    await fh.write(Buffer.from([byte[0]! ^ 0xff]), 0, 1, 100_000);
    await fh.close();
  };
  it.each([
    ['one byte changed', 'verify', flip],
    ['cut short', 'verify', (pack: string) => fs.truncate(pack, 200_000)],
    ['one byte changed', 'restore', flip],
  ] as const)('has the next backup store again what a damaged pack held (%s, found by %s): old and new points restore whole', async (_how, finder, damage) => {
    const tmp = await makeTempDir('azbk-verify-');
    const data = path.join(tmp, 'data');
    await fs.mkdir(path.join(data, 'sub'), { recursive: true });
    await writeRandomFile(path.join(data, 'sub', 'big.bin'), 3 * 1024 * 1024);
    await fs.writeFile(path.join(data, 'small.txt'), 'small\n');
    const m = await setupMachine(tmp);
    const first = await backup(m, [data]);
    const packs = await vaultObjects(m.vault.dir, 'packs');
    const sizes = await Promise.all(packs.map(async (p) => (await fs.stat(p)).size));
    const dataPack = packs[sizes.indexOf(Math.max(...sizes))]!;
    await fs.chmod(dataPack, 0o600);
    await damage(dataPack);

    if (finder === 'verify') {
      const damaged = await m.run(['verify', '--read-data', '--json']);
      expectExit(damaged, 4);
      const where = parseJson<Report>(damaged).problems.map((p) => p.where);
      expect(where.some((w) => w.endsWith(path.join(data, 'sub', 'big.bin')))).toBe(true);
    } else {
      const failed = await m.run(['restore', '--point', first.point.id, '--target', path.join(tmp, 'before'), '--json']);
      expectExit(failed, 3);
      expect(parseJson<{ failed: { path: string }[] }>(failed).failed.map((f) => f.path)).toEqual([path.join(data, 'sub', 'big.bin')]);
    }

    const second = await backup(m, [data]);
    expect(second.stats.newBytes, 'what the damaged pack held is stored again').toBeGreaterThanOrEqual(3 * 1024 * 1024);
    for (const point of [second.point.id, first.point.id]) {
      const target = path.join(tmp, `restored-${point}`);
      const r = await m.run(['restore', '--point', point, '--target', target]);
      expectExit(r, 0);
      // (equals, not toEqual: vitest compares a 3 MiB buffer byte by byte, for seconds)
      expect((await fs.readFile(path.join(target, data, 'sub', 'big.bin'))).equals(await fs.readFile(path.join(data, 'sub', 'big.bin'))), point).toBe(true);
    }
    // The blobs are found where the backup stored them again: nothing is wrong any more.
    const healed = await m.run(['verify', '--read-data', '--json']);
    expectExit(healed, 0);
    expect(parseJson<Report>(healed)).toMatchObject({ points: 2, problems: [] });
  }, 60_000);

  it('stops on Ctrl-C with exit 130, giving up the job lock (a command without a safe point of its own)', async () => {
    const tmp = await makeTempDir('azbk-verify-');
    const m = await setupMachine(tmp);
    const file = path.join(tmp, 'data.bin');
    await writeRandomFile(file, 8 * 1024 * 1024);
    await backup(m, [file]);
    // Slowed down so that it is still reading when the signal comes.
    const child = spawn(process.execPath, [BIN, 'verify', '--read-data', '--limit-download', '256K'], { env: { ...process.env, AZBK_HOME: m.home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const lock = path.join(m.home, 'job.lock');
    for (let i = 0; i < 400 && !(await fs.stat(lock).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    expect(await done, stderr).toBe(130);
    expect(stderr).toContain('AZBK_CANCELLED');
    expect(stderr).not.toMatch(/^\s+at /m);
    await expect(fs.stat(lock)).rejects.toThrow();
    await expect(fs.stat(path.join(m.home, 'progress.json'))).rejects.toThrow();
    // The next job runs at once.
    expectExit(await m.run(['verify']), 0);
  }, 60_000);
});
