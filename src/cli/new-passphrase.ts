/**
 * A new passphrase as the user gives it, for register and passphrase add: from a file, generated
 * into a new file, or typed twice on the terminal.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { checkPassphrase, generatePassphrase, givenPassphrase, readPassphraseFile, writePassphraseFile, type PassphraseInput } from '../agent/passphrase.js';
import { AzbkError, ExitCode, isAzbkError } from '../shared/errors.js';
import { promptHidden } from './prompt.js';

export interface NewPassphraseOpts {
  passphraseFile?: string;
  generatePassphrase?: string;
}

export interface NewPassphrase {
  readonly passphrase: PassphraseInput;
  /** for a generated one: the file it goes to, and what writes it there (never over a file) */
  readonly generated?: { readonly file: string; readonly write: () => Promise<void> };
}

/** Refuses both options at once; called before anything else is read. */
export function checkPassphraseSources(o: NewPassphraseOpts): void {
  if (o.passphraseFile !== undefined && o.generatePassphrase !== undefined) {
    throw new AzbkError('AZBK_USAGE', 'Give either --passphrase-file or --generate-passphrase, not both.');
  }
}

export async function newPassphrase(o: NewPassphraseOpts, warn?: (text: string) => void): Promise<NewPassphrase> {
  checkPassphraseSources(o);
  if (o.passphraseFile !== undefined) return { passphrase: await readPassphraseFile(o.passphraseFile, warn) };
  if (o.generatePassphrase !== undefined) {
    const file = path.resolve(o.generatePassphrase);
    const generated = generatePassphrase();
    return { passphrase: givenPassphrase(generated), generated: { file, write: () => writePassphraseFile(file, generated) } };
  }
  const typed = checkPassphrase(await promptHidden('Passphrase (16+ characters): '));
  if ((await promptHidden('Passphrase again: ')) !== typed) {
    throw new AzbkError('AZBK_PASSPHRASE_MISMATCH', 'The two passphrases differ.');
  }
  return { passphrase: givenPassphrase(typed) };
}

/**
 * After `err`, what becomes of a generated passphrase's file: removed when the vault holds nothing
 * made from it (`sent` false: it was never asked; or it refused), and false; kept when the vault
 * may hold it (its reply lost), and true: the file is the only way to it then.
 */
export async function keepGenerated(file: string, sent: boolean, err: unknown): Promise<boolean> {
  const refused = isAzbkError(err) && err.exitCode !== ExitCode.failed && err.code !== 'AZBK_VAULT_UNREACHABLE';
  if (sent && !refused) return true;
  await fs.rm(file, { force: true });
  return false;
}
