/** The azbk command line: builds the commander program and exits with the command's code. */
import { Command, CommanderError } from 'commander';
import { ExitCode } from '../shared/errors.js';
import { currentExitCode } from './run.js';

const EXIT_CODES = `
Exit codes:
  0 ok · 1 failed · 2 usage or bad input · 3 partial (some items skipped; listed)
  4 verify found problems (listed) · 10 vault unreachable or not found
  11 another job holds the machine · 12 wrong passphrase · 13 credentials invalid or expired
  14 vault limit reached · 130 cancelled

Local state lives in AZBK_HOME (default: the platform's config folder, e.g. ~/.config/azbk).`;

type Define = (parent: Command) => void;

/**
 * Each command's module, in the order help lists them. A run loads only the module of the command
 * it runs (a backup need not load restore, verify or the vault's own commands: about 40 ms of a
 * start on a slow machine); help, and anything it cannot tell, loads them all.
 */
const VAULT_COMMANDS: readonly (readonly [string, () => Promise<Define>])[] = [
  ['create', async () => (await import('./commands/vault-create.js')).vaultCreateCommand],
  ['credentials', async () => (await import('./commands/vault-credentials.js')).vaultCredentialsCommand],
  ['serve', async () => (await import('./commands/vault-serve.js')).vaultServeCommand],
  ['prune', async () => (await import('./commands/vault-prune.js')).vaultPruneCommand],
];
const COMMANDS: readonly (readonly [string, () => Promise<Define>])[] = [
  ['register', async () => (await import('./commands/register.js')).registerCommand],
  ['policy', async () => (await import('./commands/policy.js')).policyCommand],
  ['backup', async () => (await import('./commands/backup.js')).backupCommand],
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
function wanted(args: readonly string[]): { vault: readonly string[]; top: readonly string[] } {
  const [first, second] = args;
  if (first === 'vault' && VAULT_COMMANDS.some(([name]) => name === second)) return { vault: [second!], top: [] };
  if (first !== 'vault' && COMMANDS.some(([name]) => name === first)) return { vault: [], top: [first!] };
  return { vault: VAULT_COMMANDS.map(([name]) => name), top: COMMANDS.map(([name]) => name) };
}

/** Builds the program with the commands `args` (as process.argv.slice(2)) run, or every command. */
export async function buildProgram(args: readonly string[] = []): Promise<Command> {
  const program = new Command('azbk')
    .description('Backup agent: deduplicated, compressed, encrypted recovery points in a vault')
    .version('0.1.0')
    .showHelpAfterError()
    .addHelpText('after', EXIT_CODES);
  const want = wanted(args);
  const define = async (parent: Command, commands: typeof COMMANDS, names: readonly string[]) => {
    const chosen = commands.filter(([name]) => names.includes(name));
    for (const def of await Promise.all(chosen.map(([, load]) => load()))) def(parent);
  };
  if (want.vault.length > 0) await define(program.command('vault').description('create and manage vaults'), VAULT_COMMANDS, want.vault);
  await define(program, COMMANDS, want.top);
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
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
  }
  const program = await buildProgram(argv.slice(2));
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help';
      process.exitCode = ok ? ExitCode.ok : ExitCode.usage;
      return;
    }
    throw err;
  }
  process.exitCode = currentExitCode();
}
