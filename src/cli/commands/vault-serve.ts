/**
 * azbk vault serve: the vault as an HTTPS service for agents, over a local folder or an Azure
 * Blob Storage container. Stateless: several servers may serve one container. Prints the URL and
 * the certificate fingerprint on stdout, logs each request (JSON lines, no secrets) on stderr,
 * and on SIGTERM, SIGINT or SIGHUP stops taking connections, lets requests in flight finish, and exits 0.
 */
import type { Command } from 'commander';
import { describeLocation, openVaultStore } from '../../vault/open-store.js';
import { ensureTlsIdentity } from '../../vault/tls.js';
import { Vault } from '../../vault/vault.js';
import { action } from '../run.js';
import { addLocationOptions, givenTls, resolveLocation, type LocationOpts } from '../vault-location.js';
import { onStopSignals } from '../signals.js';

interface Opts extends LocationOpts {
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
}

/** How long after shutdown the process may take to exit before it is ended anyway. */
const EXIT_GRACE_MS = 2000;

export function vaultServeCommand(vault: Command): void {
  const cmd = vault.command('serve').description('serve a vault over HTTPS to registered machines');
  addLocationOptions(cmd)
    .option('--listen <host:port>', 'address to listen on (port 0 picks a free one)', '0.0.0.0:8443')
    .option('--tls-cert <file>', "PEM certificate (chain) to present instead of the vault's own")
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .addHelpText('after', [
      '',
      'The vault keeps its TLS certificate (made by `azbk vault create`) in its storage, so every',
      'server of one vault presents the same one. Credentials files pin its SHA-256 fingerprint.',
      'Once machines are registered, a vault whose certificate is missing is not given a new one:',
      'give the certificate they pin (or a new one, deliberately) with --tls-cert and --tls-key.',
      `Request logs go to stderr; AZBK_LOG_LEVEL sets their level.`,
      '',
      'Exit codes: 0 stopped by SIGTERM, SIGINT or SIGHUP, 1 failed (its certificate missing, say), 2 bad',
      'input, 10 vault not found or unreachable.',
    ].join('\n'))
    .action(
      action('vault serve', async ({ out, log }, o: Opts) => {
        const loc = resolveLocation(o, out);
        // The server stack is loaded only by this command.
        const { parseListen, serverLogger, startServer } = await import('../../vault/server.js');
        const { host, port } = parseListen(o.listen);
        const given = await givenTls(o, out);
        const store = await openVaultStore(loc);
        const v = await Vault.open(store);
        const cfg = await v.config();
        const machines = (await v.machines()).length;
        let tls = await ensureTlsIdentity(store, { commonName: `azbk vault ${cfg.id}`, machines, ...(given ? { given } : {}) });
        if (given !== undefined && tls.fingerprint !== given.fingerprint) {
          out.warn(`serving --tls-cert (SHA-256 ${given.fingerprint}), not the vault's own certificate; make credentials with \`azbk vault credentials --tls-cert\` so agents pin it.`);
          tls = given;
        }
        const server = await startServer({ vault: v, tls, host, port, logger: serverLogger() });
        // Handlers first, then the lines a supervisor waits for: a SIGTERM right after them is clean.
        const stopped = new Promise<void>((resolve) => {
          const ignoreSignals = onStopSignals((signal) => {
            ignoreSignals();
            log.info({ signal }, 'vault service stopping');
            server.close().then(resolve, resolve);
          });
        });
        log.info({ vaultId: cfg.id, where: describeLocation(loc), url: server.url }, 'vault service started');
        out.line(`Serving vault ${cfg.name} (${cfg.id}) from ${describeLocation(loc)}`);
        out.line(`listening on ${server.url}`);
        out.line(`certificate sha256 ${tls.fingerprint}`);
        await stopped;
        log.info({ vaultId: cfg.id }, 'vault service stopped');
        // Storage clients may keep idle sockets open; they must not keep a stopped server alive.
        setTimeout(() => process.exit(process.exitCode ?? 0), EXIT_GRACE_MS).unref();
      }),
    );
}
