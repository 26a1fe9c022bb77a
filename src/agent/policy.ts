/** The machine's backup policy: what to back up when `azbk backup --now` names nothing. */
import path from 'node:path';
import { AzbkError } from '../shared/errors.js';
import { readJsonFile, writeFileAtomic } from '../shared/files.js';
import type { HomePaths } from '../shared/paths.js';

export interface Policy {
  readonly version: 1;
  readonly include: readonly string[];
}

const EMPTY: Policy = { version: 1, include: [] };

export async function loadPolicy(paths: HomePaths): Promise<Policy> {
  let v: unknown;
  try {
    v = await readJsonFile(paths.policy);
  } catch {
    throw new AzbkError('AZBK_BAD_INPUT', `The policy file ${paths.policy} is damaged.`, { hint: 'Set it again: azbk policy set --include PATH.' });
  }
  if (v === null) return EMPTY;
  const p = v as Policy;
  if (p.version !== 1 || !Array.isArray(p.include) || !p.include.every((x) => typeof x === 'string')) {
    throw new AzbkError('AZBK_BAD_INPUT', `The policy file ${paths.policy} is damaged.`, { hint: 'Set it again: azbk policy set --include PATH.' });
  }
  return p;
}

export async function savePolicy(paths: HomePaths, include: readonly string[]): Promise<Policy> {
  const policy: Policy = { version: 1, include: [...new Set(include.map((p) => path.resolve(p)))] };
  await writeFileAtomic(paths.policy, JSON.stringify(policy, null, 2) + '\n', { mode: 0o600 });
  return policy;
}
