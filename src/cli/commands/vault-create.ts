/** azbk vault create: a new embedded vault in a local folder, and its first credentials file. */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { AzbkError } from '../../shared/errors.js';
import { fileEndpoint } from '../../vault/connect.js';
import { FsBlobStore } from '../../vault/storage/fs-store.js';
import { Vault } from '../../vault/vault.js';
import { action } from '../run.js';
import { parseValidDays, writeCredentialsFile } from './vault-credentials.js';

interface Opts {
  path: string;
  name: string;
  credentialsOut: string;
  validDays: string;
  json?: boolean;
}

export function vaultCreateCommand(vault: Command): void {
  vault
    .command('create')
    .description('create an embedded vault in a local folder and write its credentials file')
    .requiredOption('--path <dir>', 'folder for the vault (created if missing; must be empty)')
    .requiredOption('--name <name>', 'vault name')
    .requiredOption('--credentials-out <file>', 'where to write the .VaultCredentials file')
    .option('--valid-days <n>', 'days the credentials stay valid (1..10)', '10')
    .option('--json', 'print the result as JSON')
    .action(
      action('vault create', async ({ out, log }, o: Opts) => {
        const validDays = parseValidDays(o.validDays);
        const dir = path.resolve(o.path);
        if (await exists(o.credentialsOut)) {
          throw new AzbkError('AZBK_BAD_INPUT', `${path.resolve(o.credentialsOut)} already exists; azbk will not overwrite it.`);
        }
        await fs.mkdir(dir, { recursive: true, mode: 0o700 });
        const entries = (await fs.readdir(dir)).filter((e) => e !== '.tmp');
        if (entries.length > 0) throw new AzbkError('AZBK_VAULT_EXISTS', `${dir} is not empty.`);
        const v = await Vault.create(new FsBlobStore(dir), { name: o.name });
        const creds = await v.credentials({ endpoint: fileEndpoint(dir), certFingerprint: null, validDays });
        const file = await writeCredentialsFile(o.credentialsOut, creds);
        const cfg = await v.config();
        log.info({ vaultId: cfg.id, dir }, 'vault created');
        out.line(`Created vault ${cfg.name} (${cfg.id}) in ${dir}`);
        out.line(`Credentials written to ${file}; valid until ${creds.expires}.`);
        out.result({ vaultId: cfg.id, name: cfg.name, path: dir, credentials: file, expires: creds.expires });
      }),
    );
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}
