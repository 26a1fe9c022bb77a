/**
 * Retention end to end with the built CLI: `azbk policy set --keep-*` states the policy, the vault
 * applies it after the next backup, and `azbk points` no longer lists what it expired, which waits
 * in the vault's expired/ folder. Older points are made by copying a real point under older ids,
 * as a vault that has run for weeks holds them (the machine's own restores refuse them as copies:
 * its job history says which point their job made), and the policy record is dated back as if set
 * weeks ago.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pointIdFor, timeOfPointId } from '../../src/vault/layout.js';
import { backup, createVault, expectExit, expectNoStack, parseJson, runCli, setupMachine, type Machine, type Vault } from '../helpers/cli.js';
import { expectSameTree } from '../helpers/fs-tree.js';
import { startServe, type ServeProcess } from '../helpers/serve.js';
import { makeTempDir } from '../helpers/tmp.js';

const DAY = 86_400_000;

/** Copies `machine`'s point `id` in the vault folder under ids dated `daysAgo` days back; returns the new ids. */
async function agedCopies(vaultDir: string, machine: string, id: string, daysAgo: readonly number[]): Promise<string[]> {
  const dir = path.join(vaultDir, 'points', machine);
  const record = JSON.parse(await fs.readFile(path.join(dir, id), 'utf8')) as Record<string, unknown>;
  const ids: string[] = [];
  for (const days of daysAgo) {
    const time = new Date(Date.now() - days * DAY);
    const copy = pointIdFor(time);
    await fs.writeFile(path.join(dir, copy), JSON.stringify({ ...record, id: copy, time: time.toISOString() }));
    ids.push(copy);
  }
  return ids;
}

/**
 * Dates `machine`'s policy records `days` days back, as if set then: a policy that keeps fewer
 * points than before takes effect 14 days after it is set.
 */
async function agePolicies(vaultDir: string, machine: string, days: number): Promise<void> {
  const dir = path.join(vaultDir, 'policies', machine);
  for (const name of await fs.readdir(dir)) {
    const time = new Date(Date.parse(timeOfPointId(name)) - days * DAY);
    await fs.rename(path.join(dir, name), path.join(dir, pointIdFor(time)));
  }
}

async function expiredIn(vaultDir: string, machine: string): Promise<string[]> {
  const dir = path.join(vaultDir, 'expired', machine);
  const out: string[] = [];
  for (const day of await fs.readdir(dir).catch(() => [])) out.push(...(await fs.readdir(path.join(dir, day))));
  return out.sort();
}

/** Sets a policy of 7 days, backs up, and checks that exactly the points older than that expired. */
async function expireThroughCli(root: string, m: Machine, vaultDir: string): Promise<void> {
  const src = path.join(root, `src-${m.name}`);
  await fs.mkdir(src, { recursive: true });
  await fs.writeFile(path.join(src, 'a.txt'), 'kept for a week\n');
  const first = await backup(m, [src]);
  const machine = first.point.machineId as string;
  const [d40, d20, d10, d3] = await agedCopies(vaultDir, machine, first.point.id, [40, 20, 10, 3]);

  // Out of range: refused before anything is stated.
  const bad = await m.run(['policy', 'set', '--keep-daily', '3']);
  expectExit(bad, 2);
  expect(bad.stderr).toMatch(/--keep-daily takes a number of days from 7 to 9999, not 3/);
  expectNoStack(bad);
  const set = await m.run(['policy', 'set', '--keep-daily', '7']);
  expectExit(set, 0);
  expect(set.stdout).toMatch(/Retention: every point for 7 days/);
  // Stating the policy removes nothing, nor does the next backup: the machine kept everything
  // until now, and a policy that keeps less takes effect 14 days after it is set.
  expect(parseJson(await m.run(['points', '--json'])).points).toHaveLength(5);
  const early = await backup(m, [src]);
  expect(early.point.expired).toEqual([]);
  expect(parseJson(await m.run(['points', '--json'])).points).toHaveLength(6);
  const notYet = parseJson(await m.run(['points', '--json']));
  expect(notYet.retention).toMatchObject({ newest: { daily: 7, weekly: 0, monthly: 0, yearly: 0 }, inForce: null });
  expect(notYet.points.every((p: { keptBy?: unknown }) => p.keptBy === undefined)).toBe(true);
  await agePolicies(vaultDir, machine, 15);

  // `points` says what the next backup will expire, and what keeps the rest.
  const listing = await m.run(['points']);
  expect(listing.stdout).toMatch(/Retention: in force/);
  expect(listing.stdout.match(/\[expires with the next backup\]/g)).toHaveLength(3);
  const byId = new Map(parseJson(await m.run(['points', '--json'])).points.map((p: { id: string; keptBy: string[] }) => [p.id, p.keptBy]));
  expect(byId.get(d10)).toEqual([]);
  expect(byId.get(d3)).toEqual(['daily']);
  // Judged with the point the next backup adds, which is then the newest.
  expect(byId.get(early.point.id)).toEqual(['daily']);

  const second = await m.run(['backup', '--now', '--include', src]);
  expectExit(second, 0);
  expect(second.stdout).toMatch(/Retention: 3 older point\(s\) expired/);
  const listed = parseJson(await m.run(['points', '--json'])).points.map((p: { id: string }) => p.id);
  expect(listed).toHaveLength(4);
  expect(listed).toContain(first.point.id);
  expect(listed).toContain(early.point.id);
  expect(listed).toContain(d3);
  expect(await expiredIn(vaultDir, machine)).toEqual([d40!, d20!, d10!].sort());

  // What is kept restores; a copy is known for one by the job history of the machine that made
  // its point (see e2e/vault-rollback.test.ts); what expired is no longer offered.
  const out = path.join(root, `restore-${m.name}`);
  expectExit(await m.run(['restore', '--point', first.point.id, '--target', out]), 0);
  await expectSameTree(src, path.join(out, src));
  const copy = await m.run(['restore', '--point', d3!, '--target', path.join(root, `copy-${m.name}`)]);
  expectExit(copy, 1);
  expect(copy.stderr).toContain(`The vault gives recovery point ${d3} the content of point ${first.point.id}`);
  const gone = await m.run(['restore', '--point', d10!, '--target', path.join(root, `gone-${m.name}`)]);
  expectExit(gone, 2);
  expectNoStack(gone);
}

describe('retention', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups) await c();
  });

  it('the embedded vault expires the points a machine no longer keeps after its next backup', async () => {
    const tmp = await makeTempDir('azbk-retention-');
    const m = await setupMachine(tmp);
    await expireThroughCli(tmp, m, m.vault.dir);
  }, 120_000);

  it('a vault service does the same for a machine that states its policy over HTTPS', async () => {
    const tmp = await makeTempDir('azbk-retention-https-');
    const dir = path.join(tmp, 'vault');
    expectExit(await runCli(['vault', 'create', '--path', dir, '--name', 'Kept']), 0);
    const server: ServeProcess = await startServe(['--path', dir]);
    cleanups.push(async () => void (await server.stop()));
    const creds = path.join(tmp, 'Kept.VaultCredentials');
    expectExit(await runCli(['vault', 'credentials', '--path', dir, '--endpoint', server.url, '--out', creds]), 0);
    const vault: Vault = { dir, credentials: creds };
    const m = await setupMachine(tmp, { vault });
    await expireThroughCli(tmp, m, dir);
  }, 120_000);

  it('counts not given keep the value the vault has, also when this machine\'s policy file was made anew', async () => {
    const tmp = await makeTempDir('azbk-retention-keep-');
    const vault = await createVault(tmp);
    const m = await setupMachine(tmp, { vault });
    expectExit(await m.run(['policy', 'set', '--keep-daily', '7', '--keep-monthly', '12', '--keep-yearly', '5']), 0);
    // What `policy show` suggests for a damaged policy file: remove it. The vault still has the policy.
    await fs.rm(path.join(m.home, 'policy.json'));
    const set = await m.run(['policy', 'set', '--keep-weekly', '4', '--json']);
    expectExit(set, 0);
    const want = { daily: 7, weekly: 4, monthly: 12, yearly: 5 };
    expect(parseJson(set).retention).toEqual(want);
    expect(parseJson(await m.run(['points', '--json'])).retention.newest).toEqual(want);
  }, 60_000);

  it('a policy set where the vault cannot be reached changes nothing', async () => {
    const tmp = await makeTempDir('azbk-retention-down-');
    const vault = await createVault(tmp);
    const m = await setupMachine(tmp, { vault });
    await fs.rename(vault.dir, `${vault.dir}.away`);
    const r = await m.run(['policy', 'set', '--keep-daily', '14']);
    expectExit(r, 10);
    expectNoStack(r);
    await fs.rename(`${vault.dir}.away`, vault.dir);
    expect(parseJson(await m.run(['policy', 'show', '--json'])).retention).toBeUndefined();
    await expect(fs.readdir(path.join(vault.dir, 'policies'))).rejects.toThrow();
  }, 60_000);
});
