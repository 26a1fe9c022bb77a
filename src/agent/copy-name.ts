/** The name a restore gives the copy of an item it must not overwrite (`--conflict copy`). */
import fs from 'node:fs';
import path from 'node:path';

const pad = (n: number) => String(n).padStart(2, '0');

/** The longest name most file systems take, in bytes of UTF-8. */
const NAME_MAX = 255;

/**
 * `prefix` + `name` + `suffix`, with the end of `name`'s stem cut (its extension kept, when short)
 * so that the whole fits NAME_MAX: a copy of a long name is still a name the file system takes.
 */
function fitName(prefix: string, name: string, suffix: string): string {
  const room = NAME_MAX - Buffer.byteLength(prefix) - Buffer.byteLength(suffix);
  if (Buffer.byteLength(name) <= room) return prefix + name + suffix;
  const ext = path.extname(name);
  const kept = Buffer.byteLength(ext) <= 16 ? ext : '';
  const stem = [...name.slice(0, name.length - kept.length)];
  let size = Buffer.byteLength(stem.join(''));
  while (stem.length > 0 && size > room - Buffer.byteLength(kept)) size -= Buffer.byteLength(stem.pop()!);
  return prefix + stem.join('') + kept + suffix;
}

/** "YYYY-MM-DD HH-mm Copy of NAME" beside `dest`, numbered when that exists or is `taken` (by the restore). */
export async function copyName(dest: string, now: Date, taken: (candidate: string) => boolean): Promise<string> {
  const stamp = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())} ${pad(now.getHours())}-${pad(now.getMinutes())}`;
  for (let n = 1; ; n++) {
    const candidate = path.join(path.dirname(dest), fitName(`${stamp} Copy of `, path.basename(dest), n === 1 ? '' : ` (${n})`));
    if (taken(candidate)) continue;
    try {
      fs.lstatSync(candidate);
    } catch {
      return candidate;
    }
  }
}
