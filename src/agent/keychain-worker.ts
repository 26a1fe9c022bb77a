/**
 * One keychain operation, in a child process of its own. The keychain library's calls block (on
 * Linux a D-Bus round trip, which a stuck bus never answers), and a thread blocked there keeps its
 * process from ever exiting; so keychain.ts runs each operation here and kills this process when it
 * does not answer in time. The operation (with the secret) comes on stdin, the answer goes to
 * stdout, both as one JSON text: never in arguments or files.
 */
import { text } from 'node:stream/consumers';
import { Entry } from '@napi-rs/keyring';
import type { KeychainOp, KeychainReply } from './keychain.js';

function entry(op: KeychainOp): Entry {
  // On Linux, the Secret Service only: the library's fallback, the kernel's key ring, forgets at reboot.
  return new Entry(op.service, op.account, { linux: { store: 'secret-service' } });
}

function perform(op: KeychainOp): string | boolean | null {
  const e = entry(op);
  switch (op.op) {
    case 'set':
      e.setPassword(op.secret);
      return null;
    case 'get':
      return e.getPassword();
    case 'delete':
      return e.deletePassword();
    case 'probe':
      // Store, read back, and delete whatever happened.
      e.setPassword(op.secret);
      try {
        return e.getPassword() === op.secret;
      } finally {
        e.deletePassword();
      }
  }
}

let reply: KeychainReply;
try {
  reply = { ok: true, value: perform(JSON.parse(await text(process.stdin)) as KeychainOp) };
} catch (err) {
  reply = { ok: false, message: err instanceof Error ? err.message : String(err) };
}
process.stdout.write(JSON.stringify(reply));
