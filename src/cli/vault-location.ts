/**
 * The options that name a vault's storage, shared by the `vault` commands:
 * `--path DIR` or `--azure [CONNECTION-STRING] --container NAME`. The connection string should
 * come from AZBK_AZURE_CONNECTION_STRING: in the arguments, other users can read it (ps), so a
 * warning is printed when it is given there. It is never printed or logged. Also the TLS options
 * --tls-cert and --tls-key.
 */
import { Option, type Command } from 'commander';
import { AzbkError } from '../shared/errors.js';
import { exposedWarning } from '../shared/files.js';
import { shownUrl } from '../vault/connect.js';
import type { VaultLocation } from '../vault/open-store.js';
import { readTlsFiles, type TlsIdentity } from '../vault/tls.js';
import type { Output } from './output.js';

/** The environment variable holding the Azure connection string. */
export const AZURE_ENV = 'AZBK_AZURE_CONNECTION_STRING';

/** The parsed location options of a command. */
export interface LocationOpts {
  path?: string;
  azure?: string | true;
  container?: string;
}

/** Adds --path, --azure and --container to `cmd`. */
export function addLocationOptions(cmd: Command, pathHelp = 'the vault folder'): Command {
  return cmd
    .option('--path <dir>', pathHelp)
    .addOption(
      new Option('--azure [connection-string]', `store the vault in Azure Blob Storage (connection string from ${AZURE_ENV}, preferred)`),
    )
    .option('--container <name>', 'the Azure Blob Storage container (with --azure)');
}

/** The location the options name; AZBK_USAGE unless exactly one of --path and --azure is given. */
export function resolveLocation(o: LocationOpts, out: Output): VaultLocation {
  if ((o.path === undefined) === (o.azure === undefined)) {
    throw new AzbkError('AZBK_USAGE', 'Give either --path DIR or --azure --container NAME.');
  }
  if (o.path !== undefined) {
    if (o.container !== undefined) throw new AzbkError('AZBK_USAGE', '--container goes with --azure, not --path.');
    return { kind: 'fs', dir: o.path };
  }
  if (o.container === undefined) throw new AzbkError('AZBK_USAGE', '--azure needs --container NAME.');
  let connectionString: string;
  if (typeof o.azure === 'string') {
    out.warn(`a connection string on the command line can be read by other users of this machine; set ${AZURE_ENV} instead.`);
    connectionString = o.azure;
  } else {
    const env = process.env[AZURE_ENV];
    if (env === undefined || env.trim() === '') {
      throw new AzbkError('AZBK_USAGE', `--azure needs a connection string: set ${AZURE_ENV} (or pass it after --azure).`);
    }
    connectionString = env.trim();
  }
  return { kind: 'azure', connectionString, container: o.container };
}

/**
 * Checks an --endpoint: a plain https://HOST[:PORT] URL; returns it normalised. A user and
 * password in it are refused and never shown back (see shownUrl).
 */
export function parseHttpsEndpoint(s: string): string {
  const shown = shownUrl(s);
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw new AzbkError('AZBK_BAD_INPUT', `--endpoint must be an https://HOST:PORT URL, not ${shown}.`);
  }
  if (url.username !== '' || url.password !== '') {
    // Agents send no user or password: the certificate's pin and the machine's secret identify both ends.
    throw new AzbkError('AZBK_BAD_INPUT', `--endpoint must be a plain https://HOST:PORT URL, without a user or password, not ${shown}.`, {
      hint: 'Give the address alone, as `azbk vault serve` prints it.',
    });
  }
  if (url.protocol !== 'https:' || url.search !== '' || url.hash !== '') {
    throw new AzbkError('AZBK_BAD_INPUT', `--endpoint must be a plain https://HOST:PORT URL, not ${shown}.`);
  }
  if (url.port === '0') {
    throw new AzbkError('AZBK_BAD_INPUT', `--endpoint names port 0, on which no vault service can be reached: ${shown}.`, {
      hint: 'Give the port `azbk vault serve` listens on (it prints its URL).',
    });
  }
  const prefix = url.pathname.replace(/\/+$/, '');
  // The service's routes are under /v1 of the address agents are given: that address is the one before it.
  if (/\/v\d+$/.test(prefix)) {
    throw new AzbkError('AZBK_BAD_INPUT', `--endpoint is the address of the vault service without its API version: ${url.origin}${prefix.replace(/\/v\d+$/, '')}, not ${shown}.`);
  }
  return prefix === '' ? url.origin : `${url.origin}${prefix}`;
}
/**
 * Reads --tls-cert and --tls-key, which go together; undefined when neither is given. A key file
 * other users may read is used, with a warning: whoever has it can pose as the vault.
 */
export async function givenTls(o: { tlsCert?: string; tlsKey?: string }, out: Output): Promise<TlsIdentity | undefined> {
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new AzbkError('AZBK_USAGE', 'Give --tls-cert and --tls-key together.');
  if (o.tlsCert === undefined) return undefined;
  const tls = await readTlsFiles(o.tlsCert, o.tlsKey!);
  const exposed = exposedWarning(o.tlsKey!, 'TLS key');
  if (exposed !== null) out.warn(exposed);
  return tls;
}
