/**
 * azbk secrets: where this machine's secret and key are kept, and moving them between the OS
 * keychain and AZBK_HOME/secrets.json.
 */
import type { Command } from 'commander';
import { acquireJobLock } from '../../agent/lock.js';
import { loadPolicy } from '../../agent/policy.js';
import { KEYCHAIN_REACHES_SCHEDULED_JOBS } from '../../agent/scheduler.js';
import { moveSecrets, newKeychainItem, requireRegistration, secretsLocation, type SecretsLocation } from '../../agent/state.js';
import { AzbkError } from '../../shared/errors.js';
import { action } from '../run.js';
import { secretsPlace, secretsResult } from '../secrets-text.js';

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
    .addHelpText('after', '\nExit codes: 0 done, 1 the keychain is unavailable, 2 bad input (or a schedule is set and the\nkeychain was asked for on Linux or macOS, where scheduled jobs cannot reach it).')
    .action(
      action('secrets', async ({ paths, out }, o: Opts) => {
        const reg = await requireRegistration(paths);
        const from = secretsLocation(reg);
        if (o.store !== undefined && o.store !== 'keychain' && o.store !== 'file') {
          throw new AzbkError('AZBK_USAGE', `--store is keychain or file, not ${o.store}.`);
        }
        if (o.store === undefined || o.store === from.store) {
          out.line(`This machine's secret and key are kept in ${secretsPlace(paths, from)}.`);
          out.result({ secrets: secretsResult(paths, from), moved: false });
          return;
        }
        if (o.store === 'keychain' && !KEYCHAIN_REACHES_SCHEDULED_JOBS && ((await loadPolicy(paths)).schedule ?? null) !== null) {
          throw new AzbkError('AZBK_SECRETS_IN_KEYCHAIN', 'Scheduled backups are set, and cron jobs cannot reach the keychain.', {
            hint: 'Keep the secrets in the file, or turn the schedule off first: azbk policy set --schedule off.',
          });
        }
        // No job may read the secrets while they move.
        const lock = await acquireJobLock(paths.lock, { jobId: 'secrets', kind: 'secrets' });
        try {
          const current = await requireRegistration(paths); // as it is now that no job runs
          const to: SecretsLocation = o.store === 'file' ? { store: 'file' } : { store: 'keychain', ...newKeychainItem(current.machineName) };
          const { registration, leftover } = await moveSecrets(paths, current, to);
          out.line(`This machine's secret and key moved to ${secretsPlace(paths, to)}.`);
          if (leftover !== null) out.warn(leftover);
          out.result({ secrets: secretsResult(paths, secretsLocation(registration)), moved: true, ...(leftover === null ? {} : { leftover }) });
        } finally {
          await lock.release();
        }
      }),
    );
}
