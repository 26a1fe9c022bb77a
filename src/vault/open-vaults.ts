/**
 * The vault services a command connected to (see connectVault), closed when the command is over:
 * kept apart from connect.ts so that the command line can close them without loading the vault.
 */

/** Vault services connected to and not yet closed. */
export const opened = new Set<{ close(): Promise<void> }>();

/** Closes every vault service connected to: what is still in flight or waiting to be tried again ends at once. */
export async function closeVaults(): Promise<void> {
  const all = [...opened];
  opened.clear();
  await Promise.all(all.map((v) => v.close()));
}
