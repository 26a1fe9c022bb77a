/** azbk vault credentials: a fresh, signed credentials file for an existing vault. */
import path from 'node:path';
import type { Command } from 'commander';
import { AzbkError } from '../../shared/errors.js';
import { errnoCode, writeFileAtomic } from '../../shared/files.js';
import { MAX_VALID_DAYS, type CredentialsFile } from '../../vault/credentials.js';
import { fileEndpoint, openEmbeddedVault } from '../../vault/connect.js';
import { action } from '../run.js';

interface Opts {
  path: string;
  out: string;
  validDays: string;
  json?: boolean;
}

/** Parses --valid-days: an integer from 1 to 10. */
export function parseValidDays(s: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > MAX_VALID_DAYS) {
    throw new AzbkError('AZBK_BAD_INPUT', `--valid-days must be a whole number from 1 to ${MAX_VALID_DAYS}, not ${s}.`);
  }
  return n;
}

/** Writes a credentials file (owner-only, never over an existing file); returns its absolute path. */
export async function writeCredentialsFile(out: string, creds: CredentialsFile): Promise<string> {
  const file = path.resolve(out);
  try {
    await writeFileAtomic(file, JSON.stringify(creds, null, 2) + '\n', { mode: 0o600, exclusive: true });
  } catch (err) {
    const code = errnoCode(err);
    throw new AzbkError('AZBK_BAD_INPUT', code === 'EEXIST' ? `${file} already exists; azbk will not overwrite it.` : `Cannot write ${file} (${code ?? 'error'}).`);
  }
  return file;
}

export function vaultCredentialsCommand(vault: Command): void {
  vault
    .command('credentials')
    .description('write a fresh credentials file for registering machines')
    .requiredOption('--path <dir>', 'the vault folder')
    .requiredOption('--out <file>', 'where to write the .VaultCredentials file')
    .option('--valid-days <n>', 'days the credentials stay valid (1..10)', '10')
    .option('--json', 'print the result as JSON')
    .action(
      action('vault credentials', async ({ out }, o: Opts) => {
        const validDays = parseValidDays(o.validDays);
        const dir = path.resolve(o.path);
        const v = await openEmbeddedVault(dir);
        const creds = await v.credentials({ endpoint: fileEndpoint(dir), certFingerprint: null, validDays });
        const file = await writeCredentialsFile(o.out, creds);
        out.line(`Credentials written to ${file}; valid until ${creds.expires}.`);
        out.result({ credentials: file, vaultId: creds.vaultId, expires: creds.expires });
      }),
    );
}
