/** Passphrase rules and sources other than the terminal (which lives in src/cli/prompt.ts). */
import { randomInt } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { AzbkError } from '../shared/errors.js';
import { exposedWarning, newFileError, readSmallFile, syncFolder, utf8Text } from '../shared/files.js';

export const MIN_PASSPHRASE = 16;
const MAX_PASSPHRASE = 1024;

/**
 * Refuses passphrases shorter than 16 characters (Unicode code points, counted as scrypt gets
 * them: NFC-normalised), absurdly long, or holding control characters (no terminal types those).
 */
export function checkPassphrase(p: string): string {
  if (/[\u0000-\u001f\u007f]/.test(p)) throw new AzbkError('AZBK_BAD_INPUT', 'The passphrase holds a control character.');
  const n = [...p.normalize('NFC')].length;
  if (n < MIN_PASSPHRASE) {
    throw new AzbkError('AZBK_PASSPHRASE_TOO_SHORT', `The passphrase has ${n} characters; it needs at least ${MIN_PASSPHRASE}.`);
  }
  if (n > MAX_PASSPHRASE) throw new AzbkError('AZBK_BAD_INPUT', `The passphrase is longer than ${MAX_PASSPHRASE} characters.`);
  return p;
}

/**
 * A passphrase as given: `text`, from which a new key is made (checked by checkPassphrase then;
 * null for a file that is not UTF-8 text), and `readings`, every passphrase to try on the
 * vault's keys. A file gives two readings where they differ: as read now (UTF-8, without a byte
 * order mark, up to any line ending) and as earlier versions read it (undecodable bytes as
 * U+FFFD, a byte order mark kept, up to LF or CRLF), so a key made from such a file still opens.
 */
export interface PassphraseInput {
  readonly text: string | null;
  readonly readings: readonly string[];
}

/** A passphrase typed or generated: one reading. */
export function givenPassphrase(p: string): PassphraseInput {
  return { text: p, readings: [p] };
}

/**
 * Reads a passphrase file: its first line, without the line ending (see PassphraseInput). `warn`
 * hears of a file others may read.
 */
export async function readPassphraseFile(file: string, warn?: (text: string) => void): Promise<PassphraseInput> {
  const data = await readSmallFile(file, 64 * 1024, 'passphrase file');
  const exposed = warn === undefined ? null : exposedWarning(file, 'passphrase file');
  if (exposed !== null) warn!(exposed);
  const now = utf8Text(data);
  const text = now === null ? null : (now.split(/\r\n|\r|\n/, 1)[0] ?? '');
  const earlier = data.toString('utf8').split(/\r?\n/, 1)[0] ?? '';
  // Only readings some version could have made a key from: 16 characters as counted before NFC
  // counted, at most 1024 after it.
  const all = [...new Set([...(text === null ? [] : [text]), earlier])];
  const readings = all.filter((r) => [...r].length >= MIN_PASSPHRASE && [...r.normalize('NFC')].length <= MAX_PASSPHRASE);
  if (readings.length === 0) {
    checkPassphrase(all[0]!.replace(/[\u0000-\u001f\u007f]/g, ' ')); // says too short or too long
    throw new AzbkError('AZBK_BAD_INPUT', `The passphrase file ${file} holds no usable passphrase on its first line.`);
  }
  return { text, readings };
}

/** The passphrase a new key is made from: `p.text`, which must meet checkPassphrase. */
export function newKeyPassphrase(p: PassphraseInput, where = 'The passphrase'): string {
  if (p.text === null) throw new AzbkError('AZBK_BAD_INPUT', `${where} is not UTF-8 text.`);
  return checkPassphrase(p.text);
}

const ALPHABET = 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/** A random passphrase: 6 groups of 5 characters from 56 unambiguous ones (about 174 bits). */
export function generatePassphrase(): string {
  const groups: string[] = [];
  for (let g = 0; g < 6; g++) {
    let s = '';
    for (let i = 0; i < 5; i++) s += ALPHABET[randomInt(ALPHABET.length)];
    groups.push(s);
  }
  return groups.join('-');
}

/**
 * Writes a generated passphrase to a new file only its owner can read; never overwrites. The file
 * and its name are on the disk before this returns (a new key's only copy: a power cut right after
 * "Registered" left it empty). Written in place, not renamed or linked: it may go to a USB stick.
 */
export async function writePassphraseFile(file: string, passphrase: string): Promise<void> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(file, 'wx', 0o600);
  } catch (err) {
    throw newFileError(file, err);
  }
  try {
    await fh.writeFile(passphrase + '\n');
    await fh.sync();
    await fh.close();
  } catch (err) {
    // A full disk: no part of a passphrase is left to be taken for one.
    await fh.close().catch(() => undefined);
    await fs.rm(file, { force: true });
    throw newFileError(file, err);
  }
  // Some file systems (a few network ones) cannot sync a folder: the file itself is on the disk.
  await syncFolder(path.dirname(file)).catch(() => undefined);
}
