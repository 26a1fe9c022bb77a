/**
 * The command line of the scripts that make benchmark trees: `DIR [--NAME VALUE]...`, where each
 * NAME is a key of `defaults` (a number when its default is one). DIR is made if missing and must
 * be empty. Returns the options, with `dir`, and `usage(msg)`, which exits 2 saying `msg` then how
 * the script is called.
 */
import fs from 'node:fs';
import path from 'node:path';

export function treeArgs(script, synopsis, defaults) {
  const usage = (msg) => {
    if (msg) process.stderr.write(`${script}: ${msg}\n`);
    process.stderr.write(`usage: node bench/${script}.mjs ${synopsis}\n`);
    process.exit(2);
  };
  const args = process.argv.slice(2);
  const o = { dir: null, ...defaults };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const key = a.startsWith('--') ? a.slice(2) : null;
    if (key !== null && Object.hasOwn(defaults, key)) {
      const value = args[++i] ?? usage(`${a} needs a value`);
      o[key] = typeof defaults[key] === 'number' ? Number(value) : value;
    } else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (o.dir === null) o.dir = path.resolve(a);
    else usage('only one DIR');
  }
  if (o.dir === null) usage('DIR is required');
  return { o, usage };
}

/** Makes `dir` if missing; refuses (usage) one that is not empty. */
export function emptyDir(dir, usage) {
  fs.mkdirSync(dir, { recursive: true });
  if (fs.readdirSync(dir).length > 0) usage(`${dir} is not empty`);
}
