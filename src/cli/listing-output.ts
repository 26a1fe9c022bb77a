/** How listed entries are printed (ls, find): a line each, or a JSON document written as it comes. */
import type { ListedEntry } from '../agent/ls.js';
import { printable, type Output } from './output.js';

const TYPE_CHAR = { file: '-', dir: 'd', symlink: 'l' } as const;

/** `drwxr-xr-x`, as ls prints it (setuid, setgid and sticky included). */
export function modeText(type: ListedEntry['type'], mode: number): string {
  const rwx = (bits: number, special: boolean, mark: string) =>
    (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (special ? (bits & 1 ? mark : mark.toUpperCase()) : bits & 1 ? 'x' : '-');
  return TYPE_CHAR[type] + rwx(mode >> 6, (mode & 0o4000) !== 0, 's') + rwx(mode >> 3, (mode & 0o2000) !== 0, 's') + rwx(mode, (mode & 0o1000) !== 0, 't');
}

/** One line per entry: mode, size (files), time (UTC, to the second), path, and a link's target. */
export function entryLine(e: ListedEntry): string {
  const size = e.size === undefined ? '-' : String(e.size);
  const link = e.target === undefined ? '' : ` -> ${printable(e.target)}`;
  const time = e.mtime === null ? '?'.padEnd(20) : e.mtime.replace(/\.\d+Z$/, 'Z');
  return `${modeText(e.type, e.mode)} ${size.padStart(12)}  ${time}  ${printable(e.path)}${link}`;
}

/**
 * A --json result written as it comes: the fields of `head`, the list `list` item by item, then
 * the fields given at the end. A whole tree's entries held as one string would pass the longest a
 * string can be (about 2.4 million entries).
 */
export class JsonStream {
  private pending: string;
  private count = 0;

  constructor(
    private readonly out: Output,
    head: Record<string, unknown>,
    list: string,
  ) {
    const fields = Object.entries(head).map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)},\n`);
    this.pending = `{\n${fields.join('')}  ${JSON.stringify(list)}: [`;
  }

  item(v: unknown): void {
    this.pending += `${this.count++ === 0 ? '' : ','}\n    ${JSON.stringify(v)}`;
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
