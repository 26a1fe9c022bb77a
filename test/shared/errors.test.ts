import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AzbkError, errorRegistry } from '../../src/shared/errors.js';

describe('error registry', () => {
  it('is listed in docs/errors.md with the same exit codes and hints', () => {
    const doc = fs.readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const rows = new Map<string, { exit: number; hint: string }>();
    for (const m of doc.matchAll(/^\| `(AZBK_[A-Z_]+)` \| (\d+) \| (.*) \|$/gm)) {
      rows.set(m[1]!, { exit: Number(m[2]), hint: m[3]! });
    }
    expect([...rows.keys()].sort()).toEqual(Object.keys(errorRegistry).sort());
    for (const [code, spec] of Object.entries(errorRegistry)) {
      expect(rows.get(code), code).toEqual({ exit: spec.exit, hint: spec.hint });
    }
  });

  it('gives every error its registry exit code and hint', () => {
    const e = new AzbkError('AZBK_WRONG_PASSPHRASE', 'nope');
    expect(e.exitCode).toBe(12);
    expect(e.hint).toBe(errorRegistry.AZBK_WRONG_PASSPHRASE.hint);
    expect(new AzbkError('AZBK_PARTIAL', 'x', { hint: 'custom' }).hint).toBe('custom');
  });
});
