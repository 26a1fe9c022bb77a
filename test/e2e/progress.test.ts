/**
 * Progress on a terminal: a backup, a restore and verify --read-data run on a real pseudo-terminal (made by `script`,
 * util-linux) draw a status line on stderr every second and erase it before their result; with
 * --json, or without a terminal, they draw none.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, expectExit, setupMachine, type Machine } from '../helpers/cli.js';
import { writeRandomFile } from '../helpers/fs-tree.js';
import { makeTempDir } from '../helpers/tmp.js';

const SCRIPT = '/usr/bin/script';
const ERASE = '\x1b[K';

/** Runs azbk as `m` on a pseudo-terminal; what the terminal showed (stdout and stderr together). */
function onTerminal(m: Machine, args: readonly string[]): Promise<{ code: number | null; screen: string }> {
  const cmd = [process.execPath, BIN, ...args].join(' ');
  const child = spawn(SCRIPT, ['-qfec', cmd, '/dev/null'], { env: { ...process.env, AZBK_HOME: m.home }, stdio: ['ignore', 'pipe', 'pipe'] });
  let screen = '';
  child.stdout.on('data', (b: Buffer) => (screen += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, screen });
    }),
  );
}

describe.skipIf(!existsSync(SCRIPT))('progress on a terminal', () => {
  it('shows a backup, a restore and verify --read-data as they go, erased before the result; none with --json or without a terminal', async () => {
    const root = await makeTempDir('azbk-progress-');
    const data = path.join(root, 'data');
    await fs.mkdir(data);
    await writeRandomFile(path.join(data, 'big.bin'), 3 * 1024 * 1024);
    await fs.writeFile(path.join(data, 'small.txt'), 'small\n');
    const m = await setupMachine(root);

    // The upload limit stretches the backup over about three seconds.
    const backup = await onTerminal(m, ['backup', '--now', '--include', data, '--limit-upload', '1M']);
    expect(backup.code, backup.screen).toBe(0);
    const lines = [...backup.screen.matchAll(/\r(\d+:\d\d  \d+ files \([^)]*\) examined, [^\r]* uploaded)\x1b\[K/g)].map((x) => x[1]);
    expect(lines.length, backup.screen).toBeGreaterThanOrEqual(2);
    expect(lines[0]).toMatch(/^0:01  /);
    expect(backup.screen).toContain(`\r${ERASE}Recovery point `);

    const target = path.join(root, 'restored');
    const restore = await onTerminal(m, ['restore', '--point', 'latest', '--target', target, '--limit-download', '1M']);
    expect(restore.code, restore.screen).toBe(0);
    const shares = [...restore.screen.matchAll(/\r\d+:\d\d  (\d+)%  \d+ of 2 files, [^\r]* of 3\.0 MiB[^\r]*\x1b\[K/g)].map((x) => Number(x[1]));
    expect(shares.length, restore.screen).toBeGreaterThanOrEqual(2);
    expect(shares).toEqual([...shares].sort((a, b) => a - b)); // it only goes up
    expect(restore.screen).toContain(`\r${ERASE}Restored point `);
    expect((await fs.readFile(path.join(target, data, 'big.bin'))).equals(await fs.readFile(path.join(data, 'big.bin')))).toBe(true);

    const verify = await onTerminal(m, ['verify', '--read-data', '--limit-download', '1M']);
    expect(verify.code, verify.screen).toBe(0);
    const read = [...verify.screen.matchAll(/\r\d+:\d\d  (\d+)%  [^\r]* of 3\.\d MiB of stored data read and checked[^\r]*\x1b\[K/g)].map((x) => Number(x[1]));
    expect(read.length, verify.screen).toBeGreaterThanOrEqual(2);
    expect(read).toEqual([...read].sort((a, b) => a - b));
    expect(verify.screen).toContain(`\r${ERASE}Checked 1 recovery point and `);

    // --json on a terminal: the JSON alone
    const json = await onTerminal(m, ['restore', '--point', 'latest', '--target', path.join(root, 'json'), '--limit-download', '1M', '--json']);
    expect(json.code, json.screen).toBe(0);
    expect(json.screen).not.toContain(ERASE);
    expect(JSON.parse(json.screen).restored.files).toBe(2);

    // no terminal: nothing but the result
    const plain = await m.run(['restore', '--point', 'latest', '--target', path.join(root, 'plain'), '--limit-download', '1M']);
    expectExit(plain, 0);
    expect(plain.stderr).toBe('');
    expect(plain.stdout).not.toContain('\r');
  }, 90_000);
});
