/** azbk ls --point: what a recovery point holds, to choose what to restore. */
import type { Command } from 'commander';
import { openAgent } from '../../agent/context.js';
import { listPoint, type ListedEntry } from '../../agent/ls.js';
import { readPassphraseFile } from '../../agent/passphrase.js';
import { AzbkError, ExitCode } from '../../shared/errors.js';
import type { PointInfo } from '../../vault/api.js';
import { printable, type Output } from '../output.js';
import { action, setExitCode } from '../run.js';

interface Opts {
  point: string;
  recursive?: boolean;
  machine?: string;
  passphraseFile?: string;
  json?: boolean;
}

const TYPE_CHAR = { file: '-', dir: 'd', symlink: 'l' } as const;

/** `drwxr-xr-x`, as ls prints it (setuid, setgid and sticky included). */
export function modeText(type: ListedEntry['type'], mode: number): string {
  const rwx = (bits: number, special: boolean, mark: string) =>
    (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (special ? (bits & 1 ? mark : mark.toUpperCase()) : bits & 1 ? 'x' : '-');
  return TYPE_CHAR[type] + rwx(mode >> 6, (mode & 0o4000) !== 0, 's') + rwx(mode >> 3, (mode & 0o2000) !== 0, 's') + rwx(mode, (mode & 0o1000) !== 0, 't');
}

/** One line per entry: mode, size (files), time (UTC, to the second), path, and a link's target. */
function entryLine(e: ListedEntry): string {
  const size = e.size === undefined ? '-' : String(e.size);
  const link = e.target === undefined ? '' : ` -> ${printable(e.target)}`;
  const time = e.mtime === null ? '?'.padEnd(20) : e.mtime.replace(/\.\d+Z$/, 'Z');
  return `${modeText(e.type, e.mode)} ${size.padStart(12)}  ${time}  ${printable(e.path)}${link}`;
}

/**
 * The --json result, written as it comes: the point, each entry, then how it ended. A whole tree's
 * entries held as one string would pass the longest a string can be (about 2.4 million entries).
 */
class JsonListing {
  private pending = '';
  private count = 0;

  constructor(private readonly out: Output) {}

  start(point: PointInfo, machineName: string): void {
    this.pending = `{\n  "point": ${JSON.stringify(point)},\n  "machineName": ${JSON.stringify(machineName)},\n  "entries": [`;
  }

  entry(e: ListedEntry): void {
    this.pending += `${this.count++ === 0 ? '' : ','}\n    ${JSON.stringify(e)}`;
    if (this.pending.length >= 64 * 1024) this.flush();
  }

  end(tail: Record<string, unknown>): void {
    this.pending += `${this.count === 0 ? '' : '\n  '}],\n`;
    const fields = Object.entries(tail).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
    this.pending += `${fields.join(',\n')}\n}\n`;
    this.flush();
  }

  private flush(): void {
    this.out.piece(this.pending);
    this.pending = '';
  }
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
        const passphrase = o.passphraseFile === undefined ? undefined : await readPassphraseFile(o.passphraseFile);
        const ctx = await openAgent(paths);
        const json = new JsonListing(out);
        const r = await listPoint(ctx, {
          point: o.point,
          paths: wanted,
          recursive: o.recursive === true,
          ...(o.machine === undefined ? {} : { machine: o.machine }),
          ...(passphrase === undefined ? {} : { passphrase }),
          onPoint: (point, machineName) => {
            if (out.json) json.start(point, machineName);
          },
          onEntry: (e) => (out.json ? json.entry(e) : out.line(entryLine(e))),
        });
        if (r.failed.length > 0) {
          out.warn(`${r.failed.length} folder(s) could not be read; what they hold is not listed:`);
          for (const u of r.failed) out.warn(`  ${printable(u.path)}: ${printable(u.reason)}`);
          setExitCode(ExitCode.partial);
        }
        if (r.missingPacks.length > 0) {
          out.warn(`The vault is missing ${r.missingPacks.length} pack(s) its index names; listings a later backup stored again were read from there (azbk verify lists what else needs those packs).`);
        }
        if (out.json) json.end({ status: r.failed.length > 0 ? 'partial' : 'ok', failed: r.failed, missingPacks: r.missingPacks });
      }),
    );
}
