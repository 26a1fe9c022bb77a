/**
 * azbk vault credentials: a fresh, signed credentials file for an existing vault, naming either
 * the vault folder (embedded) or a vault service's https endpoint and the certificate to pin.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { AzbkError } from '../../shared/errors.js';
import { newFileError, writeFileAtomic } from '../../shared/files.js';
import { MAX_VALID_DAYS, type CredentialsFile } from '../../vault/credentials.js';
import { fileEndpoint } from '../../vault/connect.js';
import { openVaultStore } from '../../vault/open-store.js';
import { ensureTlsIdentity, fingerprintOfPem, readTlsCert } from '../../vault/tls.js';
import { Vault } from '../../vault/vault.js';
import { action } from '../run.js';
import { addLocationOptions, parseHttpsEndpoint, resolveLocation, type LocationOpts } from '../vault-location.js';
import { printable } from '../output.js';

interface Opts extends LocationOpts {
  endpoint?: string;
  tlsCert?: string;
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

/** AZBK_BAD_INPUT unless `out`'s folder is there: a mistyped path makes no folders (writeFileAtomic would). */
export async function checkOutFolder(out: string): Promise<void> {
  const file = path.resolve(out);
  const dir = path.dirname(file);
  if (!(await fs.stat(dir).then((st) => st.isDirectory(), () => false))) {
    throw new AzbkError('AZBK_BAD_INPUT', `Cannot write ${file}: the folder ${dir} does not exist.`, { hint: 'Give a file in a folder that exists (or make the folder first).' });
  }
}

/** Writes a credentials file (owner-only, never over an existing file); returns its absolute path. */
export async function writeCredentialsFile(out: string, creds: CredentialsFile): Promise<string> {
  const file = path.resolve(out);
  await checkOutFolder(file);
  try {
    await writeFileAtomic(file, JSON.stringify(creds, null, 2) + '\n', { mode: 0o600, exclusive: true });
  } catch (err) {
    throw newFileError(file, err);
  }
  return file;
}

export function vaultCredentialsCommand(vault: Command): void {
  const cmd = vault.command('credentials').description('write a fresh credentials file for registering machines');
  addLocationOptions(cmd)
    .option('--endpoint <url>', 'the https://HOST:PORT of the vault service (default for --path: the folder itself)')
    .option('--tls-cert <file>', "pin this PEM certificate instead of the vault's own (when the service is given --tls-cert)")
    .requiredOption('--out <file>', 'where to write the .VaultCredentials file')
    .option('--valid-days <n>', 'days the credentials stay valid (1..10)', '10')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExit codes: 0 written, 1 failed (the vault certificate missing, say), 2 bad input, 10 vault not found or unreachable.')
    .action(
      action('vault credentials', async ({ out }, o: Opts) => {
        const loc = resolveLocation(o, out);
        const validDays = parseValidDays(o.validDays);
        const endpoint = o.endpoint === undefined ? undefined : parseHttpsEndpoint(o.endpoint);
        if (endpoint === undefined && loc.kind === 'azure') {
          throw new AzbkError('AZBK_USAGE', 'Agents reach an Azure vault through `azbk vault serve`: give --endpoint https://HOST:PORT.');
        }
        if (endpoint === undefined && o.tlsCert !== undefined) throw new AzbkError('AZBK_USAGE', '--tls-cert goes with --endpoint.');
        const store = await openVaultStore(loc);
        const v = await Vault.open(store);
        let certFingerprint: string | null = null;
        if (endpoint !== undefined) {
          certFingerprint = o.tlsCert !== undefined
            ? fingerprintOfPem(await readTlsCert(o.tlsCert))
            : (await ensureTlsIdentity(store, { commonName: `azbk vault ${(await v.config()).id}`, machines: (await v.machines()).length })).fingerprint;
        }
        const creds = await v.credentials({ endpoint: endpoint ?? fileEndpoint((loc as { dir: string }).dir), certFingerprint, validDays });
        const file = await writeCredentialsFile(o.out, creds);
        out.line(`Credentials written to ${printable(file)}; valid until ${creds.expires}.`);
        if (certFingerprint !== null) out.line(`Agents will accept only the certificate with SHA-256 ${certFingerprint}.`);
        out.result({ credentials: file, vaultId: creds.vaultId, endpoint: creds.endpoint, certFingerprint, expires: creds.expires });
      }),
    );
}

