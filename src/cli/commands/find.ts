/** azbk find: which recovery points hold files or folders of a name or path, and in which version. */
import type { Command } from 'commander';
import { openAgent } from '../../agent/context.js';
import { findInPoints } from '../../agent/find.js';
import { readPassphraseFile } from '../../agent/passphrase.js';
import { AzbkError, ExitCode } from '../../shared/errors.js';
import { entryLine, JsonStream } from '../listing-output.js';
import { printable } from '../output.js';
import { action, setExitCode } from '../run.js';

interface Opts {
  point?: string;
  ignoreCase?: boolean;
  machine?: string;
  passphraseFile?: string;
  json?: boolean;
}

export function findCommand(program: Command): void {
  program
    .command('find')
    .description('find files and folders by name or path in the recovery points (all of them, oldest first, or one)')
    .argument('<patterns...>', "shell patterns: '*.conf', 'report-202?.pdf'; one with a / matches the whole path: '/etc/**/*.conf'")
    .option('--point <id>', "only this point: an id, 'latest', or an ISO time (the newest point at or before it)")
    .option('-i, --ignore-case', 'letters of either case match')
    .option('--machine <name>', "another machine's points (needs its passphrase)")
    .option('--passphrase-file <file>', 'the passphrase of the machine that made the backups')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nEach match is printed with its point: mode, size, time (UTC), path. * and ? match within a name, ** across\n' +
        'folders, [a-z] and [!a-z] one character. Only folder listings are read, no file data.\n' +
        '\nExit codes: 0 searched (matches or not), 2 bad input (no such point, a bad pattern), 3 some points or folders\ncould not be read (listed), 10 vault unreachable, 12 wrong passphrase, 13 credentials invalid.',
    )
    .action(
      action('find', async ({ paths, out }, patterns: string[], o: Opts) => {
        if (o.passphraseFile !== undefined && o.machine === undefined) {
          throw new AzbkError('AZBK_USAGE', '--passphrase-file is for another machine: add --machine NAME.');
        }
        const passphrase = o.passphraseFile === undefined ? undefined : await readPassphraseFile(o.passphraseFile, out.warn);
        const ctx = await openAgent(paths);
        const json = out.json ? new JsonStream(out, {}, 'matches') : undefined;
        const r = await findInPoints(ctx, {
          patterns,
          ignoreCase: o.ignoreCase === true,
          ...(o.point === undefined ? {} : { point: o.point }),
          ...(o.machine === undefined ? {} : { machine: o.machine }),
          ...(passphrase === undefined ? {} : { passphrase }),
          onMatch: (point, e) => (json !== undefined ? json.item({ point: point.id, ...e }) : out.line(`${point.id}  ${entryLine(e)}`)),
        });
        for (const w of r.warnings) out.warn(w);
        if (r.failed.length > 0) {
          out.warn(`${r.failed.length} point(s) or folder(s) could not be read; what they hold was not searched:`);
          for (const f of r.failed) out.warn(`  ${printable(f.path)}: ${printable(f.reason)}`);
          setExitCode(ExitCode.partial);
        }
        if (r.missingPacks.length > 0) {
          out.warn(`The vault is missing ${r.missingPacks.length} pack(s) its index names; listings a later backup stored again were read from there (azbk verify lists what else needs those packs).`);
        }
        out.line(`${r.matches} match(es) in ${r.points} point(s) of ${printable(r.machineName)}.`);
        json?.end({ machineName: r.machineName, points: r.points, status: r.failed.length > 0 ? 'partial' : 'ok', failed: r.failed, missingPacks: r.missingPacks, warnings: r.warnings });
      }),
    );
}
