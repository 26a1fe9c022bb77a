/**
 * azbk vault prune: one prune pass now (see vault/prune.ts), as the vault runs by itself once a
 * day after a new point. For the vault's operator: it works on the vault's storage, not through
 * a machine's registration.
 */
import type { Command } from 'commander';
import { prune, PRUNE_GRACE_DAYS } from '../../vault/prune.js';
import { openVaultStore } from '../../vault/open-store.js';
import { Vault } from '../../vault/vault.js';
import { formatBytes } from '../../core/size.js';
import { action } from '../run.js';
import { addLocationOptions, resolveLocation, type LocationOpts } from '../vault-location.js';

interface Opts extends LocationOpts {
  json?: boolean;
}

export function vaultPruneCommand(vault: Command): void {
  const cmd = vault.command('prune').description('free the space of packs no recovery point needs (the vault also does this once a day)');
  addLocationOptions(cmd)
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `\nA pack that no recovery point (kept or soft-deleted) and no checkpoint of a stopped backup names is condemned\n` +
        `first, and deleted ${PRUNE_GRACE_DAYS} days later if still nothing names it. Nothing is removed while any point was\n` +
        'written by a version of azbk that did not record its packs.\n\nExit codes: 0 done (also when nothing could be removed), 1 the vault folder is not private, 2 bad input, 10 vault not\nfound or unreachable.',
    )
    .action(
      action('vault prune', async ({ out }, o: Opts) => {
        const store = await openVaultStore(resolveLocation(o, out));
        await Vault.open(store); // refuses a folder or container that holds no vault
        const r = await prune(store, new Date());
        if (r.skipped !== null) {
          out.line(`Nothing was pruned: ${r.skipped}.`);
        } else {
          out.line(`${r.points} recovery point(s) and the checkpoints of stopped backups name ${r.named} of the vault's ${r.packs} pack(s).`);
          out.line(`Condemned ${r.condemned} pack(s) nothing names; ${r.waiting} condemned pack(s) wait out their ${PRUNE_GRACE_DAYS} days.`);
          if (r.revived > 0) out.line(`${r.revived} condemned pack(s) are named again and stay.`);
          out.line(`Deleted ${r.purged} pack(s), freeing ${formatBytes(r.purgedBytes)}.`);
        }
        out.result(r);
      }),
    );
}
