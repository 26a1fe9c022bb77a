/**
 * azbk passphrase check and add, through the CLI: a passphrase is checked against this machine's
 * key, another one is added from the key the machine holds (so a lost passphrase can be replaced),
 * and the new one restores this machine's data on another machine.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backup, expectExit, expectNoStack, parseJson, setupMachine, writePassphrase } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { generateMasterKey, wrapMasterKey } from '../../src/core/keys.js';
import { openEmbeddedVault } from '../../src/vault/connect.js';

describe('azbk passphrase', () => {
  it('checks a passphrase, adds another from the key this machine holds, and the new one restores elsewhere', async () => {
    const tmp = await makeTempDir('azbk-passphrase-');
    const a = await setupMachine(tmp, { name: 'A', passphrase: 'the first passphrase of A' });
    const data = path.join(tmp, 'data');
    await fs.mkdir(data);
    await fs.writeFile(path.join(data, 'f.txt'), 'restored with a passphrase added later\n');
    await backup(a, [data]);
    const envelopes = async () => (await fs.readdir(path.join(a.vault.dir, 'keys'))).length;

    const ok = await a.run(['passphrase', 'check', '--passphrase-file', a.passphraseFile, '--json']);
    expectExit(ok, 0);
    expect(parseJson(ok)).toMatchObject({ opens: true });
    const other = await writePassphrase(tmp, 'a passphrase nobody registered');
    const wrong = await a.run(['passphrase', 'check', '--passphrase-file', other]);
    expectExit(wrong, 12);
    expectNoStack(wrong);
    expect(wrong.stderr).toContain('AZBK_WRONG_PASSPHRASE');

    // The first one is lost: a new one is added from the key A holds.
    const before = await envelopes();
    const generated = path.join(tmp, 'new-passphrase.txt');
    const added = await a.run(['passphrase', 'add', '--generate-passphrase', generated, '--json']);
    expectExit(added, 0);
    expect(parseJson(added)).toMatchObject({ added: true, passphraseFile: generated });
    expect((await fs.stat(generated)).mode & 0o777).toBe(0o600);
    expect(await envelopes()).toBe(before + 1);
    expectExit(await a.run(['passphrase', 'check', '--passphrase-file', generated]), 0);
    expectExit(await a.run(['passphrase', 'check', '--passphrase-file', a.passphraseFile]), 0); // the first still opens

    // Adding one that opens the key already adds nothing.
    const again = await a.run(['passphrase', 'add', '--passphrase-file', generated, '--json']);
    expectExit(again, 0);
    expect(parseJson(again)).toMatchObject({ added: false });
    expect(await envelopes()).toBe(before + 1);

    // Another machine registered with the new passphrase shares A's key and restores A's point.
    const b = await setupMachine(tmp, { name: 'B', vault: a.vault, passphrase: (await fs.readFile(generated, 'utf8')).trim() });
    const keyOf = async (m: typeof a) => parseJson<{ keyId: string }>(await m.run(['passphrase', 'check', '--passphrase-file', generated, '--json'])).keyId;
    expect(await keyOf(b)).toBe(await keyOf(a));
    const target = path.join(tmp, 'restored');
    const r = await b.run(['restore', '--point', 'latest', '--machine', 'A', '--passphrase-file', generated, '--target', target]);
    expectExit(r, 0);
    expect(await fs.readFile(path.join(target, data, 'f.txt'), 'utf8')).toBe('restored with a passphrase added later\n');

    // A passphrase that opens another key of the vault is refused.
    const c = await setupMachine(tmp, { name: 'C', vault: a.vault, passphrase: 'the passphrase of machine C' });
    const taken = await a.run(['passphrase', 'add', '--passphrase-file', c.passphraseFile]);
    expectExit(taken, 2);
    expect(taken.stderr).toContain('already opens another key of the vault');
    const cOnA = await a.run(['passphrase', 'check', '--passphrase-file', c.passphraseFile]);
    expectExit(cOnA, 12); // it opens a key, but not A's
    const short = await writePassphrase(tmp, 'too short');
    const tooShort = await a.run(['passphrase', 'add', '--passphrase-file', short]);
    expectExit(tooShort, 2);
    expect(tooShort.stderr).toContain('AZBK_PASSPHRASE_TOO_SHORT');

    // A file whose earlier reading (with its byte order mark) opens another key is refused too:
    // registering with it would then open two keys.
    const embedded = await openEmbeddedVault(a.vault.dir);
    await embedded.addKey(await wrapMasterKey(generateMasterKey(), '\uFEFFa passphrase read two ways', { cost: { N: 1024, r: 8, p: 1 } }));
    const bom = path.join(tmp, 'bom.txt');
    await fs.writeFile(bom, '\uFEFFa passphrase read two ways\n');
    const twoWays = await a.run(['passphrase', 'add', '--passphrase-file', bom]);
    expectExit(twoWays, 2);
    expect(twoWays.stderr).toContain('already opens another key of the vault');
    expect(await envelopes()).toBe(before + 3); // C's own and the one made here, no more
    const noTerminal = await a.run(['passphrase', 'check']);
    expectExit(noTerminal, 2);
    expect(noTerminal.stderr).toContain('AZBK_NO_PASSPHRASE');
  }, 90_000);
});
