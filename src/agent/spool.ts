/**
 * Packs on their way to a vault service, spooled through a local file: the pack's bytes go into
 * the file as they come (a few pieces of memory instead of a whole pack's buffer), are hashed as
 * they pass, and the file is uploaded once the pack ends, read again for every attempt the upload
 * needs, then removed. Nothing names the pack before it is uploaded whole.
 */
import { randomBytes } from 'node:crypto';
import fsCb from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { PackId } from '../core/ids.js';
import { AzbkError } from '../shared/errors.js';
import { makeFoldersSync, writeAt } from '../shared/files.js';
import { InFlight } from '../shared/in-flight.js';
import type { PackStream, VaultSession } from '../vault/api.js';
import { hashedPackStream, type PackSink } from '../vault/pack-stream.js';

const SUFFIX = '.pack';

/**
 * Makes the spool folder (owner-only) and empties it: a spooled pack lives only while its job
 * does, and one job at a time holds the machine, so what is there was left by a job that was
 * killed.
 */
export async function openSpool(dir: string): Promise<void> {
  try {
    makeFoldersSync(dir, 0o700);
    for (const name of await fs.readdir(dir)) if (name.endsWith(SUFFIX)) await fs.rm(path.join(dir, name), { force: true });
  } catch (err) {
    throw localError(dir, err);
  }
}

/** A pack spooled in `dir` and stored with the session's putPackFile; null when the session has none. */
export function spoolPack(session: VaultSession, dir: string): PackStream | null {
  const put = session.putPackFile?.bind(session);
  if (put === undefined) return null;
  const file = path.join(dir, `${randomBytes(16).toString('hex')}${SUFFIX}`);
  const opening = new Promise<number>((resolve, reject) => fsCb.open(file, 'wx', 0o600, (err, fd) => (err ? reject(localError(dir, err)) : resolve(fd))));
  return hashedPackStream(opening.then((fd) => spoolFile(fd, file, dir, (id, length) => put(id, file, length))));
}

/** The spool file open as `fd`: written at its end, uploaded by `upload` when the pack ends, removed either way. */
function spoolFile(fd: number, file: string, dir: string, upload: (id: PackId, length: number) => Promise<void>): PackSink {
  const writes = new InFlight();
  let size = 0;
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= new Promise<void>((resolve) => fsCb.close(fd, () => resolve())));
  const drop = async () => {
    await writes.settled();
    await close();
    await fs.rm(file, { force: true }).catch(() => undefined);
  };
  return {
    write: (data) => {
      const at = size;
      size += data.length;
      return writes.track(writeAt(fd, data, at).catch((err: unknown) => Promise.reject(localError(dir, err))));
    },
    finish: async (id) => {
      try {
        await close();
        await upload(id, size);
      } finally {
        await drop();
      }
    },
    abort: drop,
  };
}

function localError(dir: string, err: unknown): AzbkError {
  const reason = (err as NodeJS.ErrnoException).code === 'ENOSPC' ? 'no space left on device' : (err as Error).message;
  return new AzbkError('AZBK_LOCAL_IO', `A pack could not be spooled in ${dir}: ${reason}.`, { cause: err });
}
