/**
 * The one check that a folder or file azbk trusts is this user's alone: AZBK_HOME and its secrets
 * (whoever can replace them receives the machine's backups) and a vault folder (whoever can
 * replace its signing key issues credentials). As ssh refuses loose modes on its keys, azbk
 * refuses them rather than fixing them: a folder someone else could write may already hold their
 * files.
 */
import fs from 'node:fs/promises';
import { AzbkError } from './errors.js';

/** What a failed check says: who could then do what, and what to do when another user owns it. */
export interface PrivateUse {
  /** what another user could do with it, after "so" (e.g. "it could send this machine's backups elsewhere") */
  readonly risk: string;
  /** the hint when the path belongs to another user */
  readonly otherOwnerHint: string;
}

/**
 * AZBK_LOCAL_IO unless `p` belongs to this user and, for a folder, no one else may write in it,
 * for a file, no one else may read it. Passes when `p` is not there yet, and on Windows (access
 * lists, not modes). Follows links: what counts is what is used.
 */
export async function checkPrivate(p: string, kind: 'folder' | 'file', use: PrivateUse): Promise<void> {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  let st;
  try {
    st = await fs.stat(p);
  } catch {
    return; // nothing there yet
  }
  const loose = kind === 'folder' ? (st.mode & 0o022) !== 0 : (st.mode & 0o077) !== 0;
  if (st.uid === uid && !loose) return;
  const why = st.uid !== uid ? `it belongs to another user (uid ${st.uid})` : `others may ${kind === 'folder' ? 'change what is in it' : 'read it'} (mode ${(st.mode & 0o777).toString(8)})`;
  throw new AzbkError('AZBK_LOCAL_IO', `${p} is not private: ${why}, so ${use.risk}.`, {
    hint:
      st.uid !== uid
        ? use.otherOwnerHint
        : `Make it private (chmod ${kind === 'folder' ? '700' : '600'} ${p}; on a file system without Unix permissions, mount it with uid=${uid},umask=077), then run the command again.`,
  });
}
