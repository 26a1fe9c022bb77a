/** azbk ls --point: what a recovery point holds, to choose what to restore. */
import type { Command } from 'commander';
import { openAgent } from '../../agent/context.js';
import { listPoint } from '../../agent/ls.js';
import { readPassphraseFile } from '../../agent/passphrase.js';
import { AzbkError, ExitCode } from '../../shared/errors.js';
import { entryLine, JsonStream } from '../listing-output.js';
import { printable } from '../output.js';
import { action, setExitCode } from '../run.js';

interface Opts {
  point: string;
  recursive?: boolean;
  machine?: string;
  passphraseFile?: string;
  json?: boolean;
}

export function lsCommand(program: Command): void {
  program
    .command('ls')
    .description('list what a recovery point holds: its backed-up paths, a folder, or everything under a path')
    .requiredOption('--point <id>', "point id, 'latest', or an ISO time (the newest point at or before it)")
    .argument('[paths...]', 'original absolute paths of folders or files in the point (default: its backed-up paths)')
    .option('-r, --recursive', 'everything under each folder, not only its entries')
    .option('--machine <name>', "another machine's point (needs its passphrase)")
    .option('--passphrase-file <file>', 'the passphrase of the machine that made the backup')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nOnly folder listings are read from the vault, no file data. Give a path shown here to restore --path.\n' +
        '\nExit codes: 0 listed, 1 failed (a listing on the way to a path asked for could not be read), 2 bad input (a path\nnot in the point, no such point), 3 some folders could not be read (listed), 10 vault unreachable, 12 wrong\npassphrase, 13 credentials invalid.',
    )
    .action(
      action('ls', async ({ paths, out }, wanted: string[], o: Opts) => {
        if (o.passphraseFile !== undefined && o.machine === undefined) {
          throw new AzbkError('AZBK_USAGE', '--passphrase-file is for another machine: add --machine NAME.');
        }
        const passphrase = o.passphraseFile === undefined ? undefined : await readPassphraseFile(o.passphraseFile, out.warn);
        const ctx = await openAgent(paths);
        let json: JsonStream | undefined;
        const r = await listPoint(ctx, {
          point: o.point,
          paths: wanted,
          recursive: o.recursive === true,
          ...(o.machine === undefined ? {} : { machine: o.machine }),
          ...(passphrase === undefined ? {} : { passphrase }),
          onPoint: (point, machineName) => {
            if (out.json) json = new JsonStream(out, { point, machineName }, 'entries');
          },
          onEntry: (e) => (json !== undefined ? json.item(e) : out.line(entryLine(e))),
        });
        for (const w of r.warnings) out.warn(w);
        if (r.failed.length > 0) {
          out.warn(`${r.failed.length} folder(s) could not be read; what they hold is not listed:`);
          for (const u of r.failed) out.warn(`  ${printable(u.path)}: ${printable(u.reason)}`);
          setExitCode(ExitCode.partial);
        }
        if (r.missingPacks.length > 0) {
          out.warn(`The vault is missing ${r.missingPacks.length} pack(s) its index names; listings a later backup stored again were read from there (azbk verify lists what else needs those packs).`);
        }
        json?.end({ status: r.failed.length > 0 ? 'partial' : 'ok', failed: r.failed, missingPacks: r.missingPacks, warnings: r.warnings });
      }),
    );
}
