/**
 * A vault cannot forge a point, but it could pass an old one off as new: copy it under a newer
 * name, so that "latest" restores old data, or leave the newest out of its list. The machine's
 * job history, which the vault cannot touch, gives both away.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backup, createVault, expectExit, expectNoStack, parseJson, setupMachine } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

/** A machine with one point of `root/data`, which holds f.txt ("old"). */
async function firstPoint() {
  const root = await makeTempDir('azbk-rollback-');
  const vault = await createVault(root);
  const m = await setupMachine(root, { vault });
  const src = path.join(root, 'data');
  await fs.mkdir(src);
  await fs.writeFile(path.join(src, 'f.txt'), 'old\n');
  return { root, vault, m, src, first: await backup(m, [src]) };
}

describe('a vault that presents old points as new', () => {
  it('refuses a copy of an old point under a newer name, and warns of a newest point left out', async () => {
    const { root, vault, m, src, first } = await firstPoint();
    await fs.writeFile(path.join(src, 'f.txt'), 'new\n');
    const second = await backup(m, [src]);
    const dir = path.join(vault.dir, 'points', first.point.machineId as string);
    const restored = async (target: string) => fs.readFile(path.join(target, src, 'f.txt'), 'utf8');

    // The first point's record, renamed and dated after the second: what the vault alone can do.
    const record = JSON.parse(await fs.readFile(path.join(dir, first.point.id), 'utf8'));
    const time = new Date(Date.parse(second.point.time) + 60_000);
    const copyId = `${time.toISOString().replace(/[-:]/g, '').replace('.', '')}-0badc0de`;
    await fs.writeFile(path.join(dir, copyId), JSON.stringify({ ...record, id: copyId, time: time.toISOString() }));
    const copied = await m.run(['restore', '--point', 'latest', '--target', path.join(root, 'copied')]);
    expectExit(copied, 1);
    expectNoStack(copied);
    expect(copied.stderr).toContain(`AZBK_VAULT_CORRUPT: The vault gives recovery point ${copyId} the content of point ${first.point.id}`);
    await expect(fs.stat(path.join(root, 'copied'))).rejects.toThrow();
    // The points themselves still restore by id.
    expectExit(await m.run(['restore', '--point', second.point.id, '--target', path.join(root, 'second')]), 0);
    expect(await restored(path.join(root, 'second'))).toBe('new\n');

    // The newest point withheld: the one before is restored, with a warning naming the missing one.
    await fs.rm(path.join(dir, copyId));
    await fs.rename(path.join(dir, second.point.id), path.join(root, 'withheld'));
    const older = await m.run(['restore', '--point', 'latest', '--target', path.join(root, 'older')]);
    expectExit(older, 0);
    expect(older.stderr).toContain(`This machine's last backup made recovery point ${second.point.id}, which the vault does not list (the newest it lists is ${first.point.id}).`);
    expect(await restored(path.join(root, 'older'))).toBe('old\n');

    // Listed again: no warning.
    await fs.rename(path.join(root, 'withheld'), path.join(dir, second.point.id));
    const back = await m.run(['restore', '--point', 'latest', '--target', path.join(root, 'back')]);
    expectExit(back, 0);
    expect(back.stderr).toBe('');
    expect(await restored(path.join(root, 'back'))).toBe('new\n');
  }, 60_000);

  it('takes as latest the point its last backup made when the vault dated an older one later (its clock ran ahead)', async () => {
    const { root, vault, m, src, first } = await firstPoint();
    // As if the vault's clock had been 11 days ahead when it dated the first point: its id and time
    // in the vault, and so in the job history, which records what the vault answered.
    const dir = path.join(vault.dir, 'points', first.point.machineId as string);
    const record = JSON.parse(await fs.readFile(path.join(dir, first.point.id), 'utf8'));
    const time = new Date(Date.parse(first.point.time) + 11 * 86_400_000);
    const aheadId = `${time.toISOString().replace(/[-:]/g, '').replace('.', '')}-${first.point.id.slice(-8)}`;
    await fs.writeFile(path.join(dir, aheadId), JSON.stringify({ ...record, id: aheadId, time: time.toISOString() }));
    await fs.rm(path.join(dir, first.point.id));
    const jobs = path.join(m.home, 'jobs.jsonl');
    await fs.writeFile(jobs, (await fs.readFile(jobs, 'utf8')).replaceAll(first.point.id, aheadId));

    await fs.writeFile(path.join(src, 'f.txt'), 'new\n');
    const second = await backup(m, [src]);
    expect(second.point.id < aheadId).toBe(true);
    const r = await m.run(['restore', '--point', 'latest', '--target', path.join(root, 'out')]);
    expectExit(r, 0);
    expect(r.stderr).toContain(`The vault dates recovery point ${aheadId} later than ${second.point.id}, which this machine's last backup made`);
    expect(await fs.readFile(path.join(root, 'out', src, 'f.txt'), 'utf8')).toBe('new\n');
    // ls and find take the same point as latest, and say so too.
    const ls = await m.run(['ls', '--point', 'latest', '-r', src, '--json']);
    expectExit(ls, 0);
    expect(parseJson(ls).point.id).toBe(second.point.id);
    expect(ls.stderr).toContain(`which this machine's last backup made`);
    const find = await m.run(['find', 'f.txt', '--point', 'latest', '--json']);
    expectExit(find, 0);
    expect(find.stdout).toContain(`"point":"${second.point.id}"`);
    expect(find.stdout).toContain(`which this machine's last backup made`);
    // A path not in the point taken as latest: the error says which point that was, and why.
    const missing = await m.run(['restore', '--point', 'latest', '--path', path.join(src, 'nope.txt'), '--target', path.join(root, 'none')]);
    expectExit(missing, 2);
    expect(missing.stderr).toContain(`is not in recovery point ${second.point.id}. The vault dates recovery point ${aheadId} later than ${second.point.id}`);
    // By its id, the other point is still there to restore.
    expectExit(await m.run(['restore', '--point', aheadId, '--target', path.join(root, 'ahead')]), 0);
    expect(await fs.readFile(path.join(root, 'ahead', src, 'f.txt'), 'utf8')).toBe('old\n');
  }, 60_000);
});
