/** The pages (static files shipped in the package) and the session: login, session, logout. */
import { readFileSync } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  SESSION_COOKIE,
  clearedCookie,
  cookieValue,
  sessionCookie,
  type Secret,
  type Sessions,
} from './auth.js';
import { HttpError, type WebContext } from './http.js';

const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/** The assets ship in the package beside dist/ (package.json `files`); they are read once at start. */
function loadAssets(): Map<string, Buffer> {
  const dir = new URL('../../../src/web/assets/', import.meta.url);
  return new Map(Object.keys(ASSETS).map((name) => [name, readFileSync(new URL(name, dir))]));
}

export function registerSessionRoutes(
  ctx: WebContext,
  o: { sessions: Sessions; secret: Secret; loginRate?: number | undefined },
): void {
  const { app, auth } = ctx;
  const { sessions } = o;
  const assets = loadAssets();

  const sendAsset = (name: string) => async (_req: FastifyRequest, reply: FastifyReply) =>
    reply.type(ASSETS[name]!).header('Cache-Control', 'no-cache').send(assets.get(name));
  app.get('/', sendAsset('index.html'));
  app.get('/assets/app.js', sendAsset('app.js'));
  app.get('/assets/app.css', sendAsset('app.css'));

  app.post(
    '/api/login',
    {
      config: { rateLimit: { max: o.loginRate ?? 10, timeWindow: 60_000 } },
      schema: {
        body: {
          type: 'object',
          required: ['secret'],
          properties: { secret: { type: 'string', minLength: 1, maxLength: 1024 } },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const { secret } = req.body as { secret: string };
      if (!o.secret.check(secret)) {
        throw new HttpError(401, o.secret.kind === 'token' ? 'Wrong token' : 'Wrong password');
      }
      const s = sessions.create();
      void reply.header('Set-Cookie', sessionCookie(s.id));
      return { csrf: s.csrf };
    },
  );
  app.get('/api/session', (req, reply) => {
    const session = sessions.get(cookieValue(req.headers.cookie, SESSION_COOKIE));
    if (!session) throw new HttpError(401, 'Not logged in');
    return reply.send({ csrf: session.csrf, login: o.secret.kind });
  });
  app.get('/api/login-kind', () => Promise.resolve({ login: o.secret.kind }));
  app.post('/api/logout', { preHandler: auth }, (req, reply) => {
    sessions.delete(cookieValue(req.headers.cookie, SESSION_COOKIE));
    return reply.header('Set-Cookie', clearedCookie()).send({ ok: true });
  });
}
