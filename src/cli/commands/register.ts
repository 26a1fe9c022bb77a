/** azbk register: registers this machine with a vault using a downloaded credentials file. */
import os from 'node:os';
import type { Command } from 'commander';
import { registerMachine, type SecretStore } from '../../agent/register.js';
import { loadRegistration, secretsLocation, type LocalRegistration } from '../../agent/state.js';
import { AzbkError, isAzbkError } from '../../shared/errors.js';
import { exposedWarning, readSmallTextFile } from '../../shared/files.js';
import { checkPassphraseSources, keepGenerated, newPassphrase } from '../new-passphrase.js';
import type { HomePaths } from '../../shared/paths.js';
import { action } from '../run.js';
import { secretsPlace, secretsResult } from '../secrets-text.js';
import { printable } from '../output.js';

interface Opts {
  vaultCredentials: string;
  passphraseFile?: string;
  generatePassphrase?: string;
  machineName?: string;
  reregister?: boolean;
  secretStore: string;
  json?: boolean;
}

/** The default machine name: the host name, reduced to the characters a machine name may have. */
function defaultMachineName(): string {
  const name = os.hostname().split('.')[0]?.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') ?? '';
  return name.slice(0, 64) || 'machine';
}

export function registerCommand(program: Command): void {
  program
    .command('register')
    .description('register this machine with a vault')
    .requiredOption('--vault-credentials <file>', 'the .VaultCredentials file from the vault')
    .option('--passphrase-file <file>', 'read the passphrase (16+ characters) from the first line of this file')
    .option('--generate-passphrase <file>', 'generate a strong passphrase and save it to this new file (mode 0600)')
    .option('--machine-name <name>', 'name of this machine in the vault (default: the host name)')
    .option('--reregister', 'take over a machine name that is already registered, or register this AZBK_HOME again')
    .option('--secret-store <where>', 'keep the machine secret and key in the OS keychain, in a file (AZBK_HOME/secrets.json, owner-only), or auto: the keychain when one works here', 'auto')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nScheduled jobs (cron) cannot reach a keychain on Linux or macOS: a machine with a schedule keeps its\n' +
        'secrets in the file. azbk secrets --store moves them later.\n' +
        '\nExit codes: 0 registered, 1 keychain asked for but unavailable, 2 bad input or passphrase too short,\n10 vault not found, 13 credentials invalid or expired, 14 vault full.',
    )
    .action(
      action('register', async ({ paths, out, log }, o: Opts) => {
        checkPassphraseSources(o);
        const secretStore = o.secretStore as SecretStore;
        if (!['auto', 'keychain', 'file'].includes(secretStore)) throw new AzbkError('AZBK_USAGE', `--secret-store is auto, keychain or file, not ${o.secretStore}.`);
        const credentialsText = await readSmallTextFile(o.vaultCredentials, 64 * 1024, 'credentials file');
        const exposed = exposedWarning(o.vaultCredentials, 'credentials file');
        if (exposed !== null) out.warn(exposed);
        const { passphrase, generated } = await newPassphrase(o, out.warn);
        const writeGenerated = generated?.write;
        // Registered again: the same machine by default (its name), not one named after the host.
        const registered = o.machineName === undefined && o.reregister === true ? await registeredHere(paths) : null;
        const machineName = o.machineName ?? registered?.machineName ?? defaultMachineName();
        let wroteGenerated = false;
        let inVault = false;
        try {
          const { registration, newKeyFamily, noKeychain, leftover } = await registerMachine({
            paths,
            credentialsText,
            passphrase,
            machineName,
            reregister: o.reregister === true,
            secretStore,
            beforeCommit: async () => {
              await writeGenerated?.();
              wroteGenerated = writeGenerated !== undefined;
            },
            onVaultRegistered: () => (inVault = true),
          });
          log.info({ machineId: registration.machineId, vaultId: registration.vaultId, newKeyFamily }, 'registered');
          out.line(`Registered ${registration.machineName} (${registration.machineId}) with vault ${registration.vaultName}.`);
          if (generated !== undefined) {
            out.line(`Passphrase saved to ${printable(generated.file)}. Keep a copy somewhere safe, away from this`);
            out.line('machine: without it nobody, the vault included, can restore this data elsewhere.');
          }
          out.line(newKeyFamily ? 'This passphrase starts a new key: data is shared only with machines that use it.' : "This passphrase opens a key the vault already has: the machines registered with it share deduplication and can restore each other's data.");
          const where = secretsLocation(registration);
          out.line(`Its secret and key are kept in ${secretsPlace(paths, where)}${noKeychain === null ? '' : `: no keychain here (${noKeychain})`}.`);
          if (leftover !== null) out.warn(leftover);
          out.result({ ...registration, secrets: secretsResult(paths, where), ...(noKeychain === null ? {} : { noKeychain }), newKeyFamily, passphraseFile: generated?.file });
        } catch (err) {
          if (wroteGenerated && (await keepGenerated(generated!.file, inVault, err))) {
            out.line(`The passphrase stays in ${printable(generated!.file)}: the vault may hold its key. Register again with --passphrase-file and that file.`);
          }
          throw err;
        }
      }),
    );
}

/**
 * The registration `--reregister` without `--machine-name` registers again, or null when this
 * AZBK_HOME has none (the host name is taken then). One that cannot be read is refused: which
 * machine this was is unknown, and the host name could be another machine's, whose secret a
 * re-registration would replace (locking that machine out).
 */
async function registeredHere(paths: HomePaths): Promise<LocalRegistration | null> {
  try {
    return await loadRegistration(paths);
  } catch (err) {
    if (!isAzbkError(err, 'AZBK_NOT_REGISTERED')) throw err;
    throw new AzbkError('AZBK_USAGE', `${err.message} Which machine this is cannot be told from it, so --reregister needs --machine-name.`, {
      hint: 'Give the name this machine was registered under: azbk register --vault-credentials FILE --machine-name NAME --reregister.',
      cause: err,
    });
  }
}
