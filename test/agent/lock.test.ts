/** The job lock: taking it also removes what killed jobs left in AZBK_HOME, and only that. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireJobLock } from '../../src/agent/lock.js';

let home: string | undefined;
afterEach(async () => {
  if (home !== undefined) await fs.rm(home, { recursive: true, force: true });
});

describe('the job lock', () => {
  it('taken, removes the temporary files of atomic writes an hour old or more, and nothing else', async () => {
    home = await fs.mkdtemp(path.join(os.tmpdir(), 'azbk-lock-'));
    const hoursAgo = new Date(Date.now() - 2 * 3600_000);
    const stale = ['.progress.json.0123456789ab.tmp', 'job.lock.abcdef012345.tmp'];
    const kept = ['.policy.json.0123456789ab.tmp' /* fresh: being written */, 'notes.tmp', 'job.lock.not-hex-at-all.tmp', 'policy.json'];
    for (const name of [...stale, ...kept]) await fs.writeFile(path.join(home, name), 'x');
    for (const name of [...stale, ...kept.slice(1)]) await fs.utimes(path.join(home, name), hoursAgo, hoursAgo);
    const lock = await acquireJobLock(path.join(home, 'job.lock'), { jobId: 'ab'.repeat(16), kind: 'backup' });
    expect((await fs.readdir(home)).sort()).toEqual([...kept, 'job.lock'].sort());
    await lock.release();
  });
});
