/** Asking for a passphrase on the terminal, without echoing it. */
import { AzbkError } from '../shared/errors.js';

/** Reads one line from the terminal with echo off; AZBK_NO_PASSPHRASE when there is no terminal. */
export async function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY || !process.stderr.isTTY) {
    throw new AzbkError('AZBK_NO_PASSPHRASE', 'A passphrase is needed and there is no terminal to ask for it.');
  }
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise<string>((resolve, reject) => {
    let value = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new AzbkError('AZBK_CANCELLED', 'Cancelled.'));
        // Ctrl-D: the end of input. With nothing typed, nothing will come: cancelled, as a terminal's
        // programs take it; after some, it ends the line as Enter does.
        if (ch === '\u0004') return value === '' ? done(new AzbkError('AZBK_CANCELLED', 'Cancelled (end of input).')) : done();
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else if (ch >= ' ') value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
