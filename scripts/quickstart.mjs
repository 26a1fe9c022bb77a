#!/usr/bin/env node
// The quick start: an embedded vault under AZBK_HOME, this machine registered with a generated
// passphrase, FOLDER as the policy's path when it has none, one backup of FOLDER, and the list of
// recovery points. Safe to run again: it reuses the vault, the registration and the policy it finds.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { azbkHome } from '../dist/shared/paths.js';

const folder = process.argv[2];
if (!folder) {
  process.stderr.write('usage: npm run quickstart -- FOLDER\n');
  process.exit(2);
}
// Checked before anything is made: a mistyped FOLDER would otherwise become the policy's path.
let st;
try {
  st = fs.lstatSync(folder); // a link is backed up as a link, not as the folder it points to
} catch {
  st = undefined;
}
if (!st?.isDirectory()) {
  process.stderr.write(`quickstart: ${path.resolve(folder)} is not a folder; nothing was done.\n`);
  process.exit(2);
}
const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'azbk');
const home = azbkHome();
// Nor AZBK_HOME or a folder in it, which backups leave out (the vault is made there).
const real = (p) => {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
};
const within = path.relative(real(home), real(folder));
if (within === '' || (within !== '..' && !within.startsWith(`..${path.sep}`) && !path.isAbsolute(within))) {
  process.stderr.write(`quickstart: ${path.resolve(folder)} is AZBK_HOME (${home}) or in it, which backups leave out; nothing was done.\n`);
  process.exit(2);
}
const vault = path.join(home, 'vaults', 'default');
const creds = path.join(home, 'vaults', 'default.VaultCredentials');
const passphrase = path.join(home, 'passphrase.txt');

function azbk(...args) {
  process.stdout.write(`$ azbk ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [bin, ...args], { stdio: 'inherit' });
  return r.status ?? 1;
}
function must(code) {
  if (code !== 0) process.exit(code);
}

process.stdout.write(`AZBK_HOME is ${home}\n`);
if (!fs.existsSync(path.join(vault, 'config'))) {
  fs.mkdirSync(path.dirname(creds), { recursive: true, mode: 0o700 }); // azbk writes a credentials file only into a folder that exists
  must(azbk('vault', 'create', '--path', vault, '--name', 'default', '--credentials-out', creds));
}
if (!fs.existsSync(path.join(home, 'registration.json'))) {
  if (fs.existsSync(creds)) fs.rmSync(creds);
  must(azbk('vault', 'credentials', '--path', vault, '--out', creds));
  must(azbk('register', '--vault-credentials', creds, '--generate-passphrase', passphrase));
}
// FOLDER becomes what a plain `azbk backup --now` (or a schedule) backs up, unless the policy
// names something already.
const shown = spawnSync(process.execPath, [bin, 'policy', 'show', '--json'], { encoding: 'utf8' });
if (shown.status === 0 && JSON.parse(shown.stdout).include.length === 0) must(azbk('policy', 'set', '--include', path.resolve(folder)));
const code = azbk('backup', '--now', '--include', path.resolve(folder));
must(azbk('points'));
process.exit(code);
