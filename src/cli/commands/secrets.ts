/**
 * azbk secrets: where this machine's secret and key are kept, and moving them between the OS
 * keychain and AZBK_HOME/secrets.json.
 */
import type { Command } from 'commander';
import { acquireJobLock } from '../../agent/lock.js';
import { loadPolicy } from '../../agent/policy.js';
import { scheduleNeedsSecretsFile } from '../../agent/scheduler.js';
import { dropStraySecretsFile, loadSecrets, moveSecrets, newKeychainItem, requireRegistration, secretsLocation, straySecretsFile, type SecretsLocation } from '../../agent/state.js';
import { AzbkError } from '../../shared/errors.js';
import { action } from '../run.js';
import { STRAY, secretsPlace, secretsResult } from '../secrets-text.js';

interface Opts {
  store?: string;
  json?: boolean;
}

export function secretsCommand(program: Command): void {
  program
    .command('secrets')
    .description("show where this machine's secret and key are kept, or move them with --store")
    .option('--store <where>', 'move them to the OS keychain (keychain) or to AZBK_HOME/secrets.json, owner-only (file)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nExit codes: 0 done, 1 the keychain is unavailable, 2 bad input, not registered, the secrets missing\n' +
        'from the keychain, or the keychain asked for while a schedule is set (Linux, macOS: cron jobs cannot\n' +
        'reach it), 11 a job holds the machine.',
    )
    .action(
      action('secrets', async ({ paths, out }, o: Opts) => {
        if (o.store !== undefined && o.store !== 'keychain' && o.store !== 'file') {
          throw new AzbkError('AZBK_USAGE', `--store is keychain or file, not ${o.store}.`);
        }
        const shown = await requireRegistration(paths);
        if (o.store === undefined) {
          const where = secretsLocation(shown);
          // A file that is gone or damaged is said so (as every other command does), not shown as where they are.
          if (where.store === 'file') await loadSecrets(paths, shown);
          out.line(`This machine's secret and key are kept in ${secretsPlace(paths, where)}.`);
          const stray = await straySecretsFile(paths, shown);
          if (stray) out.warn(STRAY(paths));
          out.result({ secrets: secretsResult(paths, where), moved: false, ...(stray ? { stray: paths.secrets } : {}) });
          return;
        }
        if (o.store === 'keychain' && scheduleNeedsSecretsFile(await loadPolicy(paths))) {
          throw new AzbkError('AZBK_SECRETS_IN_KEYCHAIN', 'Scheduled backups are set, and cron jobs cannot reach the keychain.', {
            hint: 'Keep the secrets in the file, or turn the schedule off first: azbk policy set --schedule off.',
          });
        }
        // No job may read the secrets while they move, and the registration is read again once
        // none can change it.
        const lock = await acquireJobLock(paths.lock, { jobId: 'secrets', kind: 'secrets' });
        try {
          const reg = await requireRegistration(paths);
          const from = secretsLocation(reg);
          if (from.store === o.store) {
            // There already, and they must read back from there (a file that is there, private
            // and whole; a keychain that answers and holds them) before a copy left in the file by
            // a move that stopped goes: else that copy may be the only one that can be read.
            await loadSecrets(paths, reg);
            const stray = await straySecretsFile(paths, reg);
            const failed = stray ? await dropStraySecretsFile(paths) : null;
            out.line(`This machine's secret and key are kept in ${secretsPlace(paths, from)} already.`);
            if (failed !== null) out.warn(failed);
            else if (stray) out.line(`The copy left in ${paths.secrets} by a move or registration that stopped is removed.`);
            out.result({ secrets: secretsResult(paths, from), moved: false });
            return;
          }
          const to: SecretsLocation = o.store === 'file' ? { store: 'file' } : { store: 'keychain', ...newKeychainItem(reg.machineName) };
          const { registration, leftover } = await moveSecrets(paths, reg, to);
          out.line(`This machine's secret and key moved to ${secretsPlace(paths, to)}.`);
          if (leftover !== null) out.warn(leftover);
          out.result({ secrets: secretsResult(paths, secretsLocation(registration)), moved: true, ...(leftover === null ? {} : { leftover }) });
        } finally {
          await lock.release();
        }
      }),
    );
}
