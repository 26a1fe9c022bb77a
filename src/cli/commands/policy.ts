/** azbk policy: what `azbk backup --now` backs up when it names nothing. */
import type { Command } from 'commander';
import { loadPolicy, savePolicy } from '../../agent/policy.js';
import { AzbkError } from '../../shared/errors.js';
import { action } from '../run.js';

export function policyCommand(program: Command): void {
  const policy = program.command('policy').description("show or set this machine's backup policy");
  policy
    .command('set')
    .description('set the files and folders to back up')
    .requiredOption('--include <path...>', 'files or folders to back up')
    .option('--json', 'print the result as JSON')
    .action(
      action('policy set', async ({ paths, out }, o: { include: string[]; json?: boolean }) => {
        if (o.include.length === 0) throw new AzbkError('AZBK_USAGE', 'Name at least one path with --include.');
        const p = await savePolicy(paths, o.include);
        out.line(`Policy saved: ${p.include.join(', ')}`);
        out.result(p);
      }),
    );
  policy
    .command('show')
    .description('show the policy')
    .option('--json', 'print the result as JSON')
    .action(
      action('policy show', async ({ paths, out }) => {
        const p = await loadPolicy(paths);
        out.line(p.include.length === 0 ? 'No policy set.' : `Include: ${p.include.join(', ')}`);
        out.result(p);
      }),
    );
}
