/** The azbk command line: builds the commander program and exits with the command's code. */
import { Command, CommanderError } from 'commander';
import fs from 'node:fs';
import { AzbkError, errorRegistry, ExitCode, type ErrorCode } from '../shared/errors.js';
import { printJsonError } from './output.js';
import { commandFinished, currentExitCode } from './run.js';
import { onStopSignals } from './signals.js';

const EXIT_CODES = `
Exit codes:
  0 ok · 1 failed · 2 usage or bad input · 3 partial (some items skipped; listed)
  4 verify found problems (listed) · 10 vault unreachable or not found
  11 another job holds the machine · 12 wrong passphrase · 13 credentials invalid or expired
  14 vault limit reached · 130 cancelled

Local state lives in AZBK_HOME (default: the platform's config folder, e.g. ~/.config/azbk).`;

type Define = (parent: Command) => void;
/**
 * A command: its name, its module's loader, and what it starts while that loads when it is the
 * one run (given the arguments after the program's name).
 */
type Entry = readonly [name: string, load: () => Promise<Define>, start?: (args: readonly string[]) => void];

/**
 * Each command's module, in the order help lists them. A run loads only the module of the command
 * it runs (a backup need not load restore, verify or the vault's own commands: about 35 ms of a
 * start on a slow machine); help, and anything it cannot tell, loads them all.
 */
const VAULT_COMMANDS: readonly Entry[] = [
  ['create', async () => (await import('./commands/vault-create.js')).vaultCreateCommand],
  ['credentials', async () => (await import('./commands/vault-credentials.js')).vaultCredentialsCommand],
  ['serve', async () => (await import('./commands/vault-serve.js')).vaultServeCommand],
  ['prune', async () => (await import('./commands/vault-prune.js')).vaultPruneCommand],
];
const COMMANDS: readonly Entry[] = [
  ['register', async () => (await import('./commands/register.js')).registerCommand],
  ['policy', async () => (await import('./commands/policy.js')).policyCommand],
  [
    'backup',
    async () => (await import('./commands/backup.js')).backupCommand,
    // a full scan's helper (see prestartScan); not for the hourly check, which seldom backs up
    (args) => {
      if (args.includes('--now') && !args.includes('--catch-up')) {
        import('../agent/pipeline/scan.js')
          .then((m) => m.prestartScan())
          .catch(() => undefined);
      }
    },
  ],
  ['points', async () => (await import('./commands/points.js')).pointsCommand],
  ['ls', async () => (await import('./commands/ls.js')).lsCommand],
  ['find', async () => (await import('./commands/find.js')).findCommand],
  ['jobs', async () => (await import('./commands/jobs.js')).jobsCommand],
  ['status', async () => (await import('./commands/status.js')).statusCommand],
  ['secrets', async () => (await import('./commands/secrets.js')).secretsCommand],
  ['passphrase', async () => (await import('./commands/passphrase.js')).passphraseCommand],
  ['restore', async () => (await import('./commands/restore.js')).restoreCommand],
  ['verify', async () => (await import('./commands/verify.js')).verifyCommand],
  ['watch', async () => (await import('./commands/watch.js')).watchCommand],
];

/** The commands `args` (the arguments after the program's name) run: one, or all when they name none known. */
function wanted(args: readonly string[]): { vault: readonly Entry[]; top: readonly Entry[] } {
  const [first, second] = args;
  const sub = first === 'vault' ? VAULT_COMMANDS.find(([name]) => name === second) : undefined;
  if (sub !== undefined) return { vault: [sub], top: [] };
  const top = COMMANDS.find(([name]) => name === first);
  if (top !== undefined) return { vault: [], top: [top] };
  return { vault: VAULT_COMMANDS, top: COMMANDS };
}

/** Builds the program with the commands `args` (as process.argv.slice(2)) run, or every command. */
export async function buildProgram(args: readonly string[] = []): Promise<Command> {
  const program = new Command('azbk')
    .description('Backup agent: deduplicated, compressed, encrypted recovery points in a vault')
    .version('0.1.0')
    .showHelpAfterError()
    .addHelpText('after', EXIT_CODES);
  const want = wanted(args);
  // The one command a run runs may start, while its modules load, work its run will need.
  if (want.top.length === 1 && !args.includes('--help') && !args.includes('-h')) want.top[0]![2]?.(args);
  const define = async (parent: Command, entries: readonly Entry[]) => {
    for (const def of await Promise.all(entries.map(([, load]) => load()))) def(parent);
  };
  if (want.vault.length > 0) await define(program.command('vault').description('create and manage vaults'), want.vault);
  await define(program, want.top);
  const usageExits = (cmd: Command) => {
    cmd.exitOverride();
    for (const sub of cmd.commands) usageExits(sub);
  };
  usageExits(program);
  return program;
}

/** Runs the CLI with `argv` (as process.argv) and exits. */
export async function main(argv: string[]): Promise<void> {
  // A reader that stops early (`azbk points | head -1`) closes the pipe: what is left to print is
  // dropped, and the command ends as it would have, with its own exit code.
  // Any other failure to write (a full disk under a redirected output) is said once, on stderr if
  // it still takes it, and the command ends AZBK_LOCAL_IO: its output is lost.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || outputLost) return;
      outputLost = true;
      process.exitCode = errorRegistry.AZBK_LOCAL_IO.exit;
      sayAtOnce('AZBK_LOCAL_IO', `Cannot write the command's output (${err.code ?? 'error'}).`);
    });
  }
  // Ctrl-C, SIGTERM or SIGHUP where the command has no way of its own to stop (see signals.ts):
  // it ends at once, through 'exit', so that what it holds (the job lock, its progress file) is given up.
  onStopSignals(stopNow);
  const words = argv.slice(2);
  jsonAsked = words.slice(0, words.includes('--') ? words.indexOf('--') : undefined).includes('--json');
  const program = await buildProgram(argv.slice(2));
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help asked for (--help, `azbk help`) and --version end 0; help shown for a command
      // missing (`azbk vault`) comes with exit code 1, and like every mistake on the command line ends 2.
      process.exitCode = err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
      // With --json the mistake is on stdout too, as every other error is (the usage stays on stderr).
      if (err.exitCode !== 0 && jsonAsked) {
        const message = err.message.replace(/^error: /, '').replace(/\s+/g, ' ').trim() || 'The command line is not complete.';
        printJsonError(new AzbkError('AZBK_USAGE', message));
      }
      return;
    }
    throw err;
  }
  process.exitCode = finalExitCode();
}

/** The code the process ends with once its command has ended: its own, unless its output was lost. */
function finalExitCode(): number {
  return outputLost ? errorRegistry.AZBK_LOCAL_IO.exit : currentExitCode();
}

/**
 * Ends the process for `sig` (exit 130), unless the command stops at a safe point itself: it
 * listens too. A command that has ended already (a backup whose point is made and recorded) exits
 * with its own code: the signal came while the process was on its way out.
 */
function stopNow(sig: NodeJS.Signals): void {
  if (process.listenerCount(sig) > 1) return;
  if (commandFinished()) process.exit(finalExitCode());
  sayAtOnce('AZBK_CANCELLED', `Stopped (${sig}).`);
  if (jsonAsked) printJsonError(new AzbkError('AZBK_CANCELLED', `Stopped (${sig}).`), true);
  process.exit(ExitCode.cancelled);
}

/** Whether the command line asks for --json (before any `--`): a stop at once says so in JSON too. */
let jsonAsked = false;

/** An error line written to stderr at once (the process may end next, or stdout be what failed); when stderr fails too, the exit code says it. */
function sayAtOnce(code: ErrorCode, message: string): void {
  try {
    fs.writeSync(2, `azbk: error ${code}: ${message}\n`);
  } catch {
    // nowhere left to say it
  }
}

/** Writing the output failed (see main). */
let outputLost = false;
