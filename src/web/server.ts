/**
 * `magebackup serve`: the web interface. Routes are fastify's, each with a JSON schema, in one module per group
 * (routes-session, routes-snapshots, routes-retention, routes-store); pages are a few static files shipped in the
 * package (src/web/assets). Every action calls the same domain functions as the CLI commands, under the same
 * store lock, and is recorded in the history log with origin `web`. This file builds the server: security
 * headers, authentication, the error handler, and what the route modules share (http.ts).
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { CliError, LockedError, UsageError } from '../errors.js';
import type { DbFlags } from '../db/config.js';
import { assertMagentoRoot } from '../store/paths.js';
import {
  CSRF_HEADER,
  SESSION_COOKIE,
  Sessions,
  cookieValue,
  csrfMatches,
  hostAllowed,
  type Secret,
} from './auth.js';
import { Jobs, errorMessage } from './jobs.js';
import { HttpError, describeHolder, lockHolder, type WebContext } from './http.js';
import { registerSessionRoutes } from './routes-session.js';
import { registerSnapshotRoutes } from './routes-snapshots.js';
import { registerRetentionRoutes } from './routes-retention.js';
import { registerStoreRoutes } from './routes-store.js';

export interface WebServerOptions {
  root: string;
  host: string;
  port: number;
  secret: Secret;
  /** more names the Host header may carry (--allow-host) */
  allowHosts?: readonly string[];
  db?: { flags: DbFlags; env: NodeJS.ProcessEnv };
  /** login attempts per minute and address */
  loginRate?: number;
  now?: () => number;
}

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

export async function buildServer(o: WebServerOptions): Promise<{ app: FastifyInstance; jobs: Jobs }> {
  const paths = await assertMagentoRoot(o.root);
  const root = paths.root;
  const sessions = new Sessions(o.now);
  const jobs = new Jobs(root);
  const app = Fastify({
    logger: false,
    bodyLimit: 64 * 1024,
    // an open page keeps its event stream open: closing the server must not wait for it
    forceCloseConnections: true,
    // errors are answered by the handler below: one line, never a stack
    ajv: { customOptions: { allErrors: false, removeAdditional: false, coerceTypes: false } },
  });

  await app.register(rateLimit, { global: false });

  app.addHook('onRequest', async (req, reply) => {
    void reply.header('X-Content-Type-Options', 'nosniff');
    void reply.header('Referrer-Policy', 'no-referrer');
    void reply.header('X-Frame-Options', 'DENY');
    void reply.header('Content-Security-Policy', CSP);
    void reply.header('Cache-Control', 'no-store');
    if (!hostAllowed(req.headers.host, o.port, o.host, o.allowHosts ?? [])) {
      throw new HttpError(
        403,
        'This Host header is not allowed (DNS rebinding protection); use the address serve printed',
      );
    }
  });

  /** Every /api route but login and session needs a session; every state change its CSRF token too. */
  const auth = (req: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
    try {
      checkAuth(req);
    } catch (err) {
      return done(err as Error);
    }
    done();
  };
  const checkAuth = (req: FastifyRequest) => {
    const session = sessions.get(cookieValue(req.headers.cookie, SESSION_COOKIE));
    if (!session) throw new HttpError(401, 'Not logged in: open the address serve printed, or log in');
    if (req.method !== 'GET' && req.method !== 'HEAD' && !csrfMatches(session, req.headers[CSRF_HEADER])) {
      throw new HttpError(403, 'Missing or wrong CSRF token (reload the page)');
    }
    // a state change from another site's page: refused whatever it carries
    const origin = req.headers.origin;
    if (origin !== undefined && req.method !== 'GET') {
      let host = '';
      try {
        host = new URL(origin).host;
      } catch {
        /* not a URL */
      }
      if (host !== req.headers.host) throw new HttpError(403, 'Cross-origin request refused');
    }
  };

  app.setErrorHandler(
    (err: Error & { statusCode?: number; validation?: unknown; code?: string }, _req, reply) => {
      if (err instanceof HttpError)
        return reply.code(err.statusCode).send({ error: err.message, ...err.extra });
      if (err.validation) return reply.code(400).send({ error: `Invalid request: ${err.message}` });
      if (err instanceof LockedError) return reply.code(423).send({ error: err.message });
      if (err instanceof UsageError) return reply.code(400).send({ error: err.message });
      if (err instanceof CliError) return reply.code(409).send({ error: errorMessage(err).message });
      const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      if (status < 500) return reply.code(status).send({ error: err.message });
      return reply.code(500).send({ error: errorMessage(err).message });
    },
  );
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: `No such page: ${req.method} ${req.url.split('?')[0]}` }),
  );

  const ctx: WebContext = {
    app,
    root,
    paths,
    jobs,
    db: o.db ?? { flags: {}, env: {} },
    now: o.now,
    auth,
    assertIdle: async () => {
      if (jobs.busy)
        throw new HttpError(409, `Busy: ${jobs.current!.command} is running (see Progress)`, {
          job: jobs.current,
        });
      const holder = await lockHolder(paths);
      if (holder) {
        throw new HttpError(423, `The store is locked by another magebackup run: ${describeHolder(holder)}`, {
          holder,
        });
      }
    },
    started: (reply, job) => {
      if (!job) throw new HttpError(409, 'Busy: another operation is running');
      return reply.code(202).send({ job });
    },
  };
  registerSessionRoutes(ctx, { sessions, secret: o.secret, loginRate: o.loginRate });
  registerStoreRoutes(ctx);
  registerSnapshotRoutes(ctx);
  registerRetentionRoutes(ctx);

  return { app, jobs };
}
