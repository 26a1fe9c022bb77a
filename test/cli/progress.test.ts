/** The status line's text: times, shares and the time left of a restore. */
import { describe, expect, it } from 'vitest';
import { backupProgressText, formatDuration, progressText, restoreProgressText, verifyProgressText } from '../../src/cli/progress.js';

const MiB = 1024 * 1024;

describe('status line', () => {
  it('writes times as m:ss, and h:mm:ss from an hour on', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(59_999)).toBe('0:59');
    expect(formatDuration(61_000)).toBe('1:01');
    expect(formatDuration(3_600_000 + 5 * 60_000 + 7_000)).toBe('1:05:07');
    expect(formatDuration(-5)).toBe('0:00');
  });

  it('says what a backup examined, read, found new and uploaded', () => {
    const text = backupProgressText({ files: 1234, bytes: 3 * MiB, readBytes: 2 * MiB, newBytes: MiB, uploadedBytes: 512 * 1024 }, 75_000);
    expect(text).toBe('1:15  1234 files (3.0 MiB) examined, 2.0 MiB read, 1.0 MiB new, 512.0 KiB uploaded');
    // one file is "1 file", none "0 files"
    expect(backupProgressText({ files: 1, bytes: 12, readBytes: 12, newBytes: 12, uploadedBytes: 0 }, 1_000)).toContain('  1 file (12 B) examined');
    expect(backupProgressText({ files: 0, bytes: 0, readBytes: 0, newBytes: 0, uploadedBytes: 0 }, 1_000)).toContain('  0 files (0 B) examined');
  });

  it('gives a restore its share by bytes, and the time left only after five seconds of writing', () => {
    const total = { files: 100, bytes: 100 * MiB };
    expect(restoreProgressText({ files: 10, bytes: 25 * MiB }, total, 8_000, 4_000)).toBe('0:08  25%  10 of 100 files, 25.0 MiB of 100.0 MiB');
    // a quarter in 10 s: three quarters take 30 s more
    expect(restoreProgressText({ files: 10, bytes: 25 * MiB }, total, 12_000, 10_000)).toBe('0:12  25%  10 of 100 files, 25.0 MiB of 100.0 MiB, about 0:30 left');
    // nothing written yet, or all of it: no estimate
    expect(restoreProgressText({ files: 0, bytes: 0 }, total, 9_000, 9_000)).not.toContain('left');
    expect(restoreProgressText(total, total, 9_000, 9_000)).toBe('0:09  100%  100 of 100 files, 100.0 MiB of 100.0 MiB');
    // empty files only: the share is by files
    expect(restoreProgressText({ files: 3, bytes: 0 }, { files: 4, bytes: 0 }, 1_000, 1_000)).toContain('75%  3 of 4 files');
    expect(restoreProgressText({ files: 1, bytes: 0 }, { files: 1, bytes: 0 }, 1_000, 1_000)).toContain('100%  1 of 1 file, ');
    // a restore in parts that still plans: what it planned so far, no share and no time left
    expect(restoreProgressText({ files: 10, bytes: 25 * MiB }, total, 12_000, 10_000, false)).toBe('0:12  10 of 100 files planned so far, 25.0 MiB of 100.0 MiB (planning more)');
    // more written than planned (files restored again after a lost pack): never over 100%
    expect(restoreProgressText({ files: 5, bytes: 120 * MiB }, total, 9_000, 9_000)).toContain('  100%  ');
  });

  it('says how many folder listings a restore has read while it plans', () => {
    expect(progressText({ kind: 'planning', listings: 1234 }, 3_000, Date.now())).toBe('0:03  planning: 1234 folder listings read');
  });

  it('gives verify --read-data its share of the stored data read', () => {
    expect(verifyProgressText(MiB, 4 * MiB, 3_000, 2_000)).toBe('0:03  25%  1.0 MiB of 4.0 MiB of stored data read and checked');
    expect(verifyProgressText(3 * MiB, 4 * MiB, 16_000, 15_000)).toBe('0:16  75%  3.0 MiB of 4.0 MiB of stored data read and checked, about 0:05 left');
    expect(verifyProgressText(0, 0, 1_000, 1_000)).toContain('  100%  ');
  });
});
