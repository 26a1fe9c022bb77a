/**
 * azbk vault create: a new vault in a local folder or an Azure Blob Storage container, with the
 * TLS certificate its vault service will present (self-signed unless --tls-cert/--tls-key give
 * one), and optionally its first credentials file.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { AzbkError } from '../../shared/errors.js';
import { existsError } from '../../shared/files.js';
import { checkVaultName } from '../../vault/config.js';
import { fileEndpoint } from '../../vault/connect.js';
import { describeLocation, openVaultStore } from '../../vault/open-store.js';
import { ensureTlsIdentity } from '../../vault/tls.js';
import { Vault } from '../../vault/vault.js';
import { action } from '../run.js';
import { addLocationOptions, givenTls, parseHttpsEndpoint, resolveLocation, type LocationOpts } from '../vault-location.js';
import { checkOutFolder, parseValidDays, writeCredentialsFile } from './vault-credentials.js';
import { printable } from '../output.js';

interface Opts extends LocationOpts {
  name: string;
  credentialsOut?: string;
  endpoint?: string;
  validDays: string;
  tlsCert?: string;
  tlsKey?: string;
  json?: boolean;
}

export function vaultCreateCommand(vault: Command): void {
  const cmd = vault.command('create').description('create a vault in a local folder or an Azure Blob Storage container');
  addLocationOptions(cmd, 'folder for the vault (created if missing; must be empty)')
    .requiredOption('--name <name>', 'vault name')
    .option('--credentials-out <file>', 'also write a .VaultCredentials file for registering machines')
    .option('--endpoint <url>', 'with --credentials-out: the https://HOST:PORT where `azbk vault serve` will listen')
    .option('--valid-days <n>', 'days the credentials stay valid (1..10)', '10')
    .option('--tls-cert <file>', 'PEM certificate (chain) for the vault service instead of a self-signed one')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExit codes: 0 created, 1 the vault folder is not private, 2 bad input or the vault exists, 10 storage\nunreachable.')
    .action(
      action('vault create', async ({ out, log }, o: Opts) => {
        const loc = resolveLocation(o, out);
        // Checked before the folder is made: a refused name leaves nothing behind.
        checkVaultName(o.name);
        const validDays = parseValidDays(o.validDays);
        const endpoint = o.endpoint === undefined ? undefined : parseHttpsEndpoint(o.endpoint);
        if (endpoint !== undefined && o.credentialsOut === undefined) throw new AzbkError('AZBK_USAGE', '--endpoint goes with --credentials-out.');
        if (loc.kind === 'azure' && o.credentialsOut !== undefined && endpoint === undefined) {
          throw new AzbkError('AZBK_USAGE', 'Agents reach an Azure vault through `azbk vault serve`: give --endpoint https://HOST:PORT with --credentials-out.');
        }
        const given = await givenTls(o, out);
        if (o.credentialsOut !== undefined) await checkOutFolder(o.credentialsOut); // before the vault is made
        if (o.credentialsOut !== undefined && (await exists(o.credentialsOut))) {
          throw existsError(path.resolve(o.credentialsOut));
        }
        const store = await openVaultStore(loc, { create: true });
        const v = await Vault.create(store, { name: o.name });
        const cfg = await v.config();
        const tls = await ensureTlsIdentity(store, { commonName: `azbk vault ${cfg.id}`, ...(given ? { given } : {}) });
        const where = describeLocation(loc);
        log.info({ vaultId: cfg.id, where }, 'vault created');
        out.line(`Created vault ${cfg.name} (${cfg.id}) in ${where}`);
        out.line(`TLS certificate for \`azbk vault serve\`: SHA-256 ${tls.fingerprint}${given ? '' : ' (self-signed)'}`);
        let credentials: { file: string; expires: string } | undefined;
        if (o.credentialsOut !== undefined) {
          const creds = await v.credentials({
            endpoint: endpoint ?? fileEndpoint((loc as { dir: string }).dir),
            certFingerprint: endpoint === undefined ? null : tls.fingerprint,
            validDays,
          });
          credentials = { file: await writeCredentialsFile(o.credentialsOut, creds), expires: creds.expires };
          out.line(`Credentials written to ${printable(credentials.file)}; valid until ${creds.expires}.`);
        }
        out.result({
          vaultId: cfg.id,
          name: cfg.name,
          ...(loc.kind === 'fs' ? { path: path.resolve(loc.dir) } : { container: loc.container }),
          certFingerprint: tls.fingerprint,
          ...(credentials ? { credentials: credentials.file, expires: credentials.expires } : {}),
        });
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
