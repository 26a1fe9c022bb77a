/**
 * Once per test run: one folder for every test's temporary files, in which nothing is made or
 * removed on the way to a test's own folder while the tests run. A backup stores the listings of
 * the folders above the paths it backs up, with their times, so a test that backs up the same
 * folder twice and expects nothing new would otherwise see the system's temporary folder change
 * whenever a test running beside it made or removed something there. Each test's folder goes into
 * a slot made here (see tmp.ts); whatever else asks for a temporary folder (os.tmpdir() in the
 * tests, the processes they start) gets `scratch`.
 */
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

/** Slots made ahead: more than the tests hold at once (a slot is free again once its test ends). */
const SLOTS = 1024;

declare module 'vitest' {
  export interface ProvidedContext {
    /** the run's folder: `slots/<n>` for tests' own folders, `scratch` for the rest */
    azbkTempBase: string;
    azbkTempSlots: number;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const base = await realpath(await mkdtemp(join(tmpdir(), 'azbk-tests-')));
  await mkdir(join(base, 'scratch'));
  await mkdir(join(base, 'slots'));
  for (let i = 0; i < SLOTS; i++) await mkdir(join(base, 'slots', String(i)));
  process.env.TMPDIR = join(base, 'scratch');
  project.provide('azbkTempBase', base);
  project.provide('azbkTempSlots', SLOTS);
  return () => rm(base, { recursive: true, force: true, maxRetries: 5 });
}
