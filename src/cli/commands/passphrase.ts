/**
 * azbk passphrase check | add: whether a passphrase opens this machine's key, and another
 * passphrase for it (this machine holds the key itself, so a lost passphrase can be replaced
 * while the machine lives).
 */
import type { Command } from 'commander';
import { openAgent } from '../../agent/context.js';
import { addPassphrase } from '../../agent/passphrase-add.js';
import { checkPassphrase, givenPassphrase, readPassphraseFile } from '../../agent/passphrase.js';
import { opensFamily } from '../../agent/unlock.js';
import { AzbkError, isAzbkError } from '../../shared/errors.js';
import { keepGenerated, newPassphrase } from '../new-passphrase.js';
import { promptHidden } from '../prompt.js';
import { action } from '../run.js';
import { printable } from '../output.js';

interface CheckOpts {
  passphraseFile?: string;
  json?: boolean;
}

interface AddOpts {
  passphraseFile?: string;
  generatePassphrase?: string;
  json?: boolean;
}

/** A passphrase typed on the terminal, checked as one read from a file is; without a terminal, the file option is the way. */
async function typed(): Promise<string> {
  try {
    return checkPassphrase(await promptHidden('Passphrase: '));
  } catch (err) {
    if (!isAzbkError(err, 'AZBK_NO_PASSPHRASE')) throw err;
    throw new AzbkError(err.code, err.message, { hint: 'Give --passphrase-file FILE when no terminal is attached.' });
  }
}

export function passphraseCommand(program: Command): void {
  const passphrase = program.command('passphrase').description("check or add a passphrase of this machine's key");
  passphrase
    .command('check')
    .description("check that a passphrase opens this machine's key, as a restore on another machine needs")
    .option('--passphrase-file <file>', 'read the passphrase from the first line of this file (default: ask on the terminal)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExit codes: 0 it opens the key, 2 bad input, 10 vault unreachable, 12 it does not, 13 this machine is refused by the vault.')
    .action(
      action('passphrase check', async ({ paths, out }, o: CheckOpts) => {
        const p = o.passphraseFile !== undefined ? await readPassphraseFile(o.passphraseFile, out.warn) : givenPassphrase(await typed());
        const ctx = await openAgent(paths);
        if (!(await opensFamily(await ctx.session.listKeys(), p.readings, ctx.keys.keyId))) {
          throw new AzbkError('AZBK_WRONG_PASSPHRASE', "This passphrase does not open this machine's key: it cannot restore this machine's data elsewhere.", {
            hint: 'Find the passphrase this machine was registered with, or add one: azbk passphrase add.',
          });
        }
        out.line(`This passphrase opens the key of ${ctx.registration.machineName} (${ctx.keys.keyId}): it restores this machine's data on any machine.`);
        out.result({ opens: true, keyId: ctx.keys.keyId });
      }),
    );
  passphrase
    .command('add')
    .description("add a passphrase that opens this machine's key (the ones before it keep working)")
    .option('--passphrase-file <file>', 'read the new passphrase (16+ characters) from the first line of this file')
    .option('--generate-passphrase <file>', 'generate a strong passphrase and save it to this new file (mode 0600)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nThis machine holds its key, so a lost passphrase can be replaced from it. The vault never removes an\n' +
        'envelope: passphrases added before keep opening the key.\n' +
        '\nExit codes: 0 added (or opens the key already), 2 bad input or passphrase too short, 10 vault unreachable,\n13 this machine is refused by the vault, 14 the vault holds 64 passphrase envelopes (for all its machines).',
    )
    .action(
      action('passphrase add', async ({ paths, out }, o: AddOpts) => {
        const { passphrase: p, generated } = await newPassphrase(o, out.warn);
        const ctx = await openAgent(paths);
        let wrote = false;
        let sent = false;
        let result: 'added' | 'opens already';
        try {
          result = await addPassphrase(ctx, p, {
            // The new passphrase is on disk before the vault can hold its envelope.
            beforeAdd: async () => {
              await generated?.write();
              wrote = generated !== undefined;
            },
            onAdding: () => (sent = true),
          });
        } catch (err) {
          if (wrote && (await keepGenerated(generated!.file, sent, err))) out.warn(`The passphrase stays in ${generated!.file}: the vault may hold its envelope.`);
          throw err;
        }
        out.line(
          result === 'added'
            ? `Added: this passphrase opens the key of ${ctx.registration.machineName} (${ctx.keys.keyId}) too; the ones before it still do.`
            : `This passphrase opens the key of ${ctx.registration.machineName} already; nothing was added.`,
        );
        if (generated !== undefined) out.line(`Passphrase saved to ${printable(generated.file)}. Keep a copy somewhere safe, away from this machine.`);
        out.result({ added: result === 'added', keyId: ctx.keys.keyId, ...(generated === undefined ? {} : { passphraseFile: generated.file }) });
      }),
    );
}
