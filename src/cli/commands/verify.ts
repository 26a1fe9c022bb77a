/**
 * azbk verify: checks that every recovery point of this machine's key (on any machine) and every
 * checkpoint of this machine refers only to listings and chunks the vault's index names, in packs
 * the vault holds; with --read-data, also reads and checks every chunk.
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { openAgent } from '../../agent/context.js';
import { knownBadPacks, recordDamagedIndex, recordDamagedPacks, recordMissingPacks, recordRepairedIndex } from '../../agent/file-cache.js';
import { repairIndex, type IndexRepair } from '../../agent/repair-index.js';
import { verifyVault, type VerifyReport } from '../../agent/verify.js';
import { acquireJobLock } from '../../agent/lock.js';
import { ExitCode } from '../../shared/errors.js';
import { checkLimits, limitOptions, withLimits, type LimitOpts } from '../limits.js';
import { counted, printable } from '../output.js';
import { action, setExitCode } from '../run.js';
import { jobProgress } from '../progress.js';

interface Opts extends LimitOpts {
  readData?: boolean;
  repairIndex?: boolean;
  json?: boolean;
}

/** Problems listed one per line at most; the rest are counted (all of them are in --json). */
const SHOWN = 200;

export function verifyCommand(program: Command): void {
  limitOptions(program.command('verify'), { upload: false })
    .description("check that the vault holds everything the recovery points of this machine's key refer to")
    .option('--read-data', 'also read every chunk and check it (decrypt, decompress, compare with its id): reads the whole vault')
    .option('--repair-index', "first name again, in new index files, this key's packs no intact index file names (from each pack's own header)")
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nWithout --read-data every folder listing is read and checked, and every pack that holds chunks is\n' +
        'looked up; with it, every chunk is read too. Nothing is written to the vault, but with --repair-index\n' +
        'the new index files.\n' +
        '\nExit codes: 0 nothing wrong, 4 problems found (listed), 1 verify itself failed, 2 not registered, 10 vault\nunreachable, 11 another job is running (verify holds the machine while it runs), 13 credentials invalid.',
    )
    .action(
      action('verify', async ({ paths, out, log }, o: Opts) => {
        checkLimits(o);
        const ctx = await withLimits(await openAgent(paths, { job: true }), o);
        // A backup of this machine finishing meanwhile would drop checkpoints and points it listed.
        const lock = await acquireJobLock(paths.lock, { jobId: randomBytes(8).toString('hex'), kind: 'verify' });
        let r: VerifyReport;
        // How far reading the data got, on a terminal and for status (see progress.ts).
        const live = jobProgress(paths, o.json === true);
        const onReading = (total: number, progress: () => number) => {
          const since = Date.now();
          live.follow(() => ({ kind: 'verify', bytes: progress(), totalBytes: total, since }));
        };
        let repair: IndexRepair | undefined;
        try {
          if (o.repairIndex === true) {
            repair = await repairIndex(ctx.session, ctx.keys);
            log.info({ unnamed: repair.unnamed, named: repair.named, blobs: repair.blobs, foreign: repair.foreign, damaged: repair.damaged.length, indexFiles: repair.indexFiles.length }, 'index repaired');
            // Every pack of this key the vault holds is named by an intact index file now (unless a
            // header was damaged too): the damaged index files are not problems any more.
            if (repair.damagedIndex.length > 0 && repair.damaged.length === 0) recordRepairedIndex(paths.home, ctx.registration.vaultId, ctx.keys.keyId, repair.damagedIndex);
          }
          r = await verifyVault(ctx.session, ctx.keys, { readData: o.readData === true, onReading, ...knownBadPacks(paths.home, ctx.registration.vaultId, ctx.keys.keyId) });
          // The next backup leaves them out, and so stores again what this machine still has of them.
          if (r.missingPacks.length > 0) recordMissingPacks(paths.home, ctx.registration.vaultId, ctx.keys.keyId, r.missingPacks);
          if (r.damagedPacks.length > 0) recordDamagedPacks(paths.home, ctx.registration.vaultId, ctx.keys.keyId, r.damagedPacks);
          if (r.damagedIndex.length > 0) recordDamagedIndex(paths.home, ctx.registration.vaultId, ctx.keys.keyId, r.damagedIndex);
        } finally {
          await live.stop();
          await lock.release();
        }
        log.info({ points: r.points, checkpoints: r.checkpoints, trees: r.trees, blobs: r.blobs, packs: r.packs, problems: r.problems.length, readData: o.readData === true }, 'verify finished');
        if (repair?.unnamed === 0) out.line('Index: an intact index file names every pack of the vault: nothing to repair.');
        else if (repair !== undefined) {
          const foreign = repair.foreign > 0 ? `; ${repair.foreign} of another key, left to its machines` : '';
          out.line(
            `Index: ${counted(repair.unnamed, 'pack')} named by no intact index file of this key; ${repair.named} of this key named again from ${repair.named === 1 ? 'its header' : 'their headers'}` +
              ` in ${counted(repair.indexFiles.length, 'new index file')} (${counted(repair.blobs, 'blob')})${foreign}.`,
          );
          for (const p of repair.damaged) out.line(`  pack ${p}: its header is damaged; not named (what only it holds cannot be found)`);
        }
        if (r.repairedIndex.length > 0) out.line(`${counted(r.repairedIndex.length, 'damaged index file')} whose packs a repair named again: not a problem.`);
        if (r.unneededIndex.length > 0) {
          out.warn(
            `${counted(r.unneededIndex.length, 'index file')} damaged, or not azbk's (any machine of the vault may add one): every point and checkpoint is found without ${r.unneededIndex.length === 1 ? 'it' : 'them'}, so not a problem: ${r.unneededIndex.join(', ')}.`,
          );
        }
        out.line(
          `Checked ${counted(r.points, 'recovery point')} and ${counted(r.checkpoints, 'checkpoint')}: ${counted(r.trees, 'folder listing')}, ${counted(r.blobs, 'blob')}` +
            ` in ${counted(r.packs, 'pack')}${o.readData === true ? ', every chunk read' : ''}.`,
        );
        // Found now or known from before: what points need of them was found elsewhere, or is a problem listed below.
        if (r.damagedPacks.length > 0) out.warn(`${counted(r.damagedPacks.length, 'pack')} held damaged (this machine's next backup stores again what it still has of them): ${r.damagedPacks.join(', ')}.`);
        if (r.missingPacks.length > 0) out.warn(`${counted(r.missingPacks.length, 'pack')} named by the index missing from the vault (this machine's next backup stores again what it still has of them): ${r.missingPacks.join(', ')}.`);
        if (r.orphanPacks > 0) {
          out.line(`${r.orphanPacks} pack(s) hold nothing the points of this key read (data of expired points, a copy of data stored twice, or packs of stopped or running jobs): not a problem; prune frees those no point or checkpoint names.`);
        }
        // Names come from the vault's listings: no control character reaches the terminal as one.
        for (const p of r.problems.slice(0, SHOWN)) out.line(`  ${printable(p.where)}: ${printable(p.what)}`);
        if (r.problems.length > SHOWN) out.line(`  ... and ${r.problems.length - SHOWN} more (--json lists them all).`);
        out.result(repair === undefined ? r : { ...r, indexRepair: repair });
        if (r.problems.length > 0) {
          // The report is the result (one JSON document with --json); the exit code says it is bad.
          out.warn(`${r.problems.length} problem(s) found: the points and files named cannot be restored whole. A new backup stores again what this machine still has.`);
          setExitCode(ExitCode.problems);
        } else out.line('Nothing is wrong.');
      }),
    );
}
