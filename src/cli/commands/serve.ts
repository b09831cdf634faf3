import { UsageError } from '../../errors.js';
import { WarningCode } from '../../events.js';
import { isLoopback, makeSecret } from '../../web/auth.js';
import { buildServer } from '../../web/server.js';
import type { CommandRun } from '../context.js';
import { dbFlags, type ServeOptions } from '../options.js';

/** `serve`: the web interface, until SIGINT/SIGTERM (a running operation is stopped and cleaned up first). */
export async function serve(run: CommandRun, opts: ServeOptions): Promise<number> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 8765;
  const env = run.io.env;
  let made;
  try {
    made = makeSecret(env.MAGEBACKUP_WEB_PASSWORD);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const { secret, token } = made;
  // the password is hashed; the plain text is not passed on to anything this process starts
  delete env.MAGEBACKUP_WEB_PASSWORD;
  const { app, jobs } = await buildServer({
    root: run.root,
    host,
    port,
    secret,
    allowHosts: opts.allowHost ?? [],
    db: { flags: dbFlags(opts), env },
  });
  if (!isLoopback(host)) {
    run.reporter.onEvent({
      type: 'warning',
      code: WarningCode.EXPOSED,
      message:
        `!!! serve listens on ${host}, not on 127.0.0.1: anyone who can reach this address can try to log in, and ` +
        'traffic (the session cookie, downloaded backups with customer data) is NOT encrypted. ' +
        'Prefer the default and an SSH tunnel: ssh -L 8765:127.0.0.1:8765 <this host> !!!',
    });
  }
  try {
    await app.listen({ host, port });
  } catch (err) {
    await app.close();
    const code = (err as { code?: string }).code;
    if (code === 'EADDRINUSE')
      throw new UsageError(`Port ${port} on ${host} is in use: pick another with --port`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
      throw new UsageError(`Cannot listen on ${host}: no such address here (see --host)`);
    throw err;
  }
  const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  const url = `http://${shown}:${port}/`;
  const how = token
    ? `Open ${url}#token=${token}\n(or open ${url} and paste the token: ${token})`
    : `Open ${url} and log in with the password from MAGEBACKUP_WEB_PASSWORD`;
  run.reporter.result(`magebackup web interface for ${run.root}\n${how}\nStop with Ctrl-C.`, {
    type: 'result',
    command: 'serve',
    url,
    ...(token ? { token } : {}),
  });
  await new Promise<void>((resolve) => {
    if (run.signal.aborted) resolve();
    run.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  const reason: unknown = run.signal.reason;
  await jobs.stop(typeof reason === 'string' ? reason : 'SIGINT');
  await app.close();
  return 0;
}
