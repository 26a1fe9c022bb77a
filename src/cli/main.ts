/** The azbk command line: builds the commander program and exits with the command's code. */
import { Command, CommanderError } from 'commander';
import { ExitCode } from '../shared/errors.js';
import { backupCommand } from './commands/backup.js';
import { jobsCommand } from './commands/jobs.js';
import { findCommand } from './commands/find.js';
import { lsCommand } from './commands/ls.js';
import { pointsCommand } from './commands/points.js';
import { policyCommand } from './commands/policy.js';
import { registerCommand } from './commands/register.js';
import { passphraseCommand } from './commands/passphrase.js';
import { restoreCommand } from './commands/restore.js';
import { secretsCommand } from './commands/secrets.js';
import { statusCommand } from './commands/status.js';
import { verifyCommand } from './commands/verify.js';
import { watchCommand } from './commands/watch.js';
import { vaultCreateCommand } from './commands/vault-create.js';
import { vaultCredentialsCommand } from './commands/vault-credentials.js';
import { vaultPruneCommand } from './commands/vault-prune.js';
import { vaultServeCommand } from './commands/vault-serve.js';
import { currentExitCode } from './run.js';

const EXIT_CODES = `
Exit codes:
  0 ok · 1 failed · 2 usage or bad input · 3 partial (some items skipped; listed)
  4 verify found problems (listed) · 10 vault unreachable or not found
  11 another job holds the machine · 12 wrong passphrase · 13 credentials invalid or expired
  14 vault limit reached · 130 cancelled

Local state lives in AZBK_HOME (default: the platform's config folder, e.g. ~/.config/azbk).`;

/** Builds the program; exported for tests that parse without running. */
export function buildProgram(): Command {
  const program = new Command('azbk')
    .description('Backup agent: deduplicated, compressed, encrypted recovery points in a vault')
    .version('0.1.0')
    .showHelpAfterError()
    .addHelpText('after', EXIT_CODES);
  const vault = program.command('vault').description('create and manage vaults');
  vaultCreateCommand(vault);
  vaultCredentialsCommand(vault);
  vaultServeCommand(vault);
  vaultPruneCommand(vault);
  registerCommand(program);
  policyCommand(program);
  backupCommand(program);
  pointsCommand(program);
  lsCommand(program);
  findCommand(program);
  jobsCommand(program);
  statusCommand(program);
  secretsCommand(program);
  passphraseCommand(program);
  restoreCommand(program);
  verifyCommand(program);
  watchCommand(program);
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
  const program = buildProgram();
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
