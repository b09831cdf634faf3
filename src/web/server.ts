/**
 * `magebackup serve`: the web interface. Routes are fastify's, each with a JSON schema; pages are a few static
 * files shipped in the package (src/web/assets). Every action calls the same domain functions as the CLI
 * commands, under the same store lock, and is recorded in the history log with origin `web`.
 */
import { promises as fsp, constants as fsc, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { ExitCode, CliError, LockedError, UsageError, errnoCode } from '../errors.js';
import type { Part } from '../events.js';
import { acquireLock, readLock, LOCK_FILE, type LockInfo } from '../fs/lock.js';
import { ensureDir } from '../fs/atomic.js';
import { STRIP_GROUPS } from '../db/strip.js';
import type { DbFlags } from '../db/config.js';
import { runBackup } from '../backup/run-backup.js';
import { restoreSnapshot } from '../restore/snapshot-restore.js';
import { verifyBackups } from '../backup/verify-backups.js';
import {
  DEFAULT_KEEP_WITHIN,
  assertPolicy,
  DEFAULT_POLICY,
  describePolicy,
  planPrune,
  pruneBackups,
  type RetentionPolicy,
} from '../backup/prune.js';
import { getSnapshot, listSnapshots, type SnapshotInfo } from '../store/snapshot-list.js';
import { assertMagentoRoot, storePaths } from '../store/paths.js';
import { deadRunNotice, isMaintenanceEnabled, setMaintenance } from '../maintenance/maintenance.js';
import { appendHistory, readHistory } from '../history/history.js';
import { historyEntry } from '../history/summary.js';
import {
  CSRF_HEADER,
  SESSION_COOKIE,
  Sessions,
  clearedCookie,
  cookieValue,
  csrfMatches,
  hostAllowed,
  sessionCookie,
  type Secret,
} from './auth.js';
import { Jobs, errorMessage, type JobMessage } from './jobs.js';

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

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const ID = { type: 'string', pattern: '^[0-9]{1,12}$' } as const;
const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: ID },
  additionalProperties: false,
} as const;
const PARTS = ['code', 'media', 'db'] as const;
const policyProps = {
  keepWithin: { type: 'string', pattern: '^([0-9]+[smhdw])+$', maxLength: 20 },
  keepLast: { type: 'integer', minimum: 0, maximum: 100000 },
  keepDaily: { type: 'integer', minimum: 0, maximum: 100000 },
  keepWeekly: { type: 'integer', minimum: 0, maximum: 100000 },
} as const;

interface PolicyInput {
  keepWithin?: string;
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
}

/** An HTTP error with a message for the page; never a stack trace. */
class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** The store's lock, if a live run holds it (a CLI run, or this server's own job). */
async function lockHolder(root: string): Promise<LockInfo | null> {
  const info = await readLock(path.join(storePaths(root).backupsDir, LOCK_FILE));
  if (!info) return null;
  if (info.host === os.hostname()) {
    try {
      process.kill(info.pid, 0);
    } catch (err) {
      if (errnoCode(err) !== 'EPERM') return null; // a dead run's lock: the next run takes it over
    }
  }
  return info;
}

function describeHolder(h: LockInfo): string {
  return `${h.command} (pid ${h.pid} on ${h.host}, started ${h.started})`;
}

/** What the pages show of a snapshot: no absolute path, nothing of env.php. */
export function snapshotView(s: SnapshotInfo, keepWithin: number) {
  return {
    id: s.id,
    timestamp: s.timestamp,
    created: s.created,
    age: s.age,
    status: s.status,
    restorable: s.status === 'complete' || s.status === 'legacy',
    restorableUntil: new Date((s.timestamp + keepWithin) * 1000).toISOString(),
    parts: s.parts,
    partFiles: s.partFiles,
    totalSize: s.totalSize,
    problems: s.problems,
    files: s.files.map((f) => ({ name: f.name, kind: f.kind, size: f.size })),
    ...(s.manifest
      ? {
          manifest: {
            tool: s.manifest.tool,
            command: s.manifest.command,
            created: s.manifest.created,
            completed: s.manifest.completed,
            warnings: s.manifest.warnings,
            ...(s.manifest.serverVersion ? { serverVersion: s.manifest.serverVersion } : {}),
            parts: s.manifest.parts,
          },
        }
      : {}),
  };
}

function policyOf(body: PolicyInput): RetentionPolicy {
  const p: RetentionPolicy = {};
  if (body.keepWithin !== undefined) {
    // same syntax as --keep-within; parseDuration is the CLI's
    p.keepWithin = parseDurationStrict(body.keepWithin);
  }
  if (body.keepLast !== undefined) p.keepLast = body.keepLast;
  if (body.keepDaily !== undefined) p.keepDaily = body.keepDaily;
  if (body.keepWeekly !== undefined) p.keepWeekly = body.keepWeekly;
  const policy = Object.keys(p).length ? p : { ...DEFAULT_POLICY };
  try {
    assertPolicy(policy);
  } catch (err) {
    throw new HttpError(400, err instanceof Error ? err.message : String(err));
  }
  return policy;
}

function parseDurationStrict(text: string): number {
  const units: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  let total = 0;
  for (const m of text.matchAll(/(\d+)([smhdw])/g)) total += Number(m[1]) * units[m[2]!]!;
  if (total <= 0) throw new HttpError(400, `keepWithin "${text}" is not a duration like 14d, 36h, 2w`);
  return total;
}

export async function buildServer(o: WebServerOptions): Promise<{ app: FastifyInstance; jobs: Jobs }> {
  const paths = await assertMagentoRoot(o.root);
  const root = paths.root;
  const assets = loadAssets();
  const sessions = new Sessions(o.now);
  const jobs = new Jobs(root);
  const db = o.db ?? { flags: {}, env: {} };
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

  // pages
  const sendAsset = (name: string) => async (_req: FastifyRequest, reply: FastifyReply) =>
    reply.type(ASSETS[name]!).header('Cache-Control', 'no-cache').send(assets.get(name));
  app.get('/', sendAsset('index.html'));
  app.get('/assets/app.js', sendAsset('app.js'));
  app.get('/assets/app.css', sendAsset('app.css'));

  // session
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

  // what the pages need to know about the store and the server
  app.get('/api/status', { preHandler: auth }, async () => {
    const holder = await lockHolder(root);
    const ours = holder && holder.pid === process.pid && holder.host === os.hostname();
    return {
      root,
      busy: jobs.busy || holder !== null,
      holder: holder && !ours ? { ...holder, text: describeHolder(holder) } : null,
      job: jobs.view(),
      maintenance: await isMaintenanceEnabled(root),
      deadRun: await deadRunNotice(root),
      stripGroups: Object.keys(STRIP_GROUPS),
      defaultPolicy: describePolicy(DEFAULT_POLICY),
    };
  });

  app.get('/api/snapshots', { preHandler: auth }, async () => {
    const { snapshots } = await listSnapshots(root, o.now ? { now: o.now } : {});
    return { snapshots: snapshots.map((s) => snapshotView(s, DEFAULT_KEEP_WITHIN)) };
  });

  app.get('/api/snapshots/:id', { preHandler: auth, schema: { params: idParams } }, async (req) => {
    const { id } = req.params as { id: string };
    const s = await getSnapshot(root, id, o.now ? { now: o.now } : {}).catch((err: unknown) => {
      throw err instanceof CliError ? new HttpError(404, err.message) : err;
    });
    return snapshotView(s, DEFAULT_KEEP_WITHIN);
  });

  app.get(
    '/api/snapshots/:id/files/:name',
    {
      preHandler: auth,
      schema: {
        params: {
          type: 'object',
          required: ['id', 'name'],
          properties: {
            id: ID,
            name: { type: 'string', pattern: '^[0-9]{1,12}_[a-z_]+(\\.[a-z]+)+$', maxLength: 80 },
          },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const { id, name } = req.params as { id: string; name: string };
      const s = await getSnapshot(root, id).catch((err: unknown) => {
        throw err instanceof CliError ? new HttpError(404, err.message) : err;
      });
      const f = s.files.find((x) => x.name === name && x.kind !== 'partial' && x.kind !== 'marker');
      if (!f) throw new HttpError(404, `Snapshot ${id} has no file ${name}`);
      // never through a link; a regular file only
      const fh = await fsp.open(f.path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        throw new HttpError(409, `${name} is not a regular file`);
      }
      void reply
        .type(name.endsWith('.json') ? 'application/json' : 'application/octet-stream')
        .header('Content-Disposition', `attachment; filename="${name}"`)
        .header('Content-Length', String(st.size));
      return reply.send(fh.createReadStream());
    },
  );

  /** Refuses to start while a run (the CLI's, or this server's) holds the store. */
  const assertIdle = async () => {
    if (jobs.busy)
      throw new HttpError(409, `Busy: ${jobs.current!.command} is running (see Progress)`, {
        job: jobs.current,
      });
    const holder = await lockHolder(root);
    if (holder) {
      throw new HttpError(423, `The store is locked by another magebackup run: ${describeHolder(holder)}`, {
        holder,
      });
    }
  };
  const started = (reply: FastifyReply, job: ReturnType<Jobs['start']>) => {
    if (!job) throw new HttpError(409, 'Busy: another operation is running');
    return reply.code(202).send({ job });
  };

  app.post(
    '/api/snapshots',
    {
      preHandler: auth,
      schema: {
        body: {
          type: 'object',
          required: ['parts', 'confirm'],
          properties: {
            parts: { type: 'array', items: { enum: PARTS }, minItems: 1, maxItems: 3, uniqueItems: true },
            compress: { type: 'boolean' },
            strip: {
              type: 'array',
              items: { enum: Object.keys(STRIP_GROUPS) },
              maxItems: 20,
              uniqueItems: true,
            },
            maintenance: { type: 'boolean' },
            confirm: { const: true },
          },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { parts: Part[]; compress?: boolean; strip?: string[]; maintenance?: boolean };
      await assertIdle();
      const all = b.parts.length === 3;
      const command = all ? 'snapshot:create' : 'setup:backup';
      return started(
        reply,
        jobs.start(command, undefined, async (run) => {
          const r = await runBackup({
            root,
            parts: {
              code: b.parts.includes('code'),
              media: b.parts.includes('media'),
              db: b.parts.includes('db'),
            },
            compress: !!b.compress,
            strip: (b.strip ?? []).map((g) => `@${g}`),
            maintenance: b.maintenance !== false,
            db,
            signal: run.signal,
            onEvent: run.onEvent,
            command: `${command} (web)`,
          });
          return {
            data: { ...r, id: String(r.timestamp) },
            exitCode: r.warnings ? ExitCode.WARNINGS : ExitCode.OK,
          };
        }),
      );
    },
  );

  app.post(
    '/api/snapshots/:id/restore',
    {
      preHandler: auth,
      schema: {
        params: idParams,
        body: {
          type: 'object',
          required: ['confirmId'],
          properties: {
            confirmId: { type: 'string', maxLength: 20 },
            dropExtraTables: { type: 'boolean' },
            maintenance: { type: 'boolean' },
          },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const b = req.body as { confirmId: string; dropExtraTables?: boolean; maintenance?: boolean };
      if (b.confirmId.trim() !== id) {
        throw new HttpError(
          400,
          `Type the snapshot id ${id} to confirm the restore (got "${b.confirmId.slice(0, 20)}")`,
        );
      }
      const s = await getSnapshot(root, id).catch((err: unknown) => {
        throw err instanceof CliError ? new HttpError(404, err.message) : err;
      });
      if (s.status === 'incomplete' || s.status === 'corrupt') {
        throw new HttpError(
          409,
          `Snapshot ${id} is ${s.status} and cannot be restored: ${s.problems.join('; ')}`,
        );
      }
      await assertIdle();
      return started(
        reply,
        jobs.start('snapshot:restore', id, async (run) => {
          const r = await restoreSnapshot({
            root,
            id,
            dropExtraTables: !!b.dropExtraTables,
            maintenance: b.maintenance !== false,
            db,
            signal: run.signal,
            onEvent: run.onEvent,
            command: 'snapshot:restore (web)',
          });
          return { data: r, exitCode: r.warnings ? ExitCode.WARNINGS : ExitCode.OK };
        }),
      );
    },
  );

  app.post(
    '/api/snapshots/:id/verify',
    {
      preHandler: auth,
      schema: {
        params: idParams,
        body: {
          type: 'object',
          properties: { deep: { type: 'boolean' } },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      const b = (req.body ?? {}) as { deep?: boolean };
      await getSnapshot(root, id).catch((err: unknown) => {
        throw err instanceof CliError ? new HttpError(404, err.message) : err;
      });
      await assertIdle();
      return started(
        reply,
        jobs.start('backups:verify', id, async (run) => {
          const r = await verifyBackups({
            root,
            ids: [id],
            deep: !!b.deep,
            db,
            signal: run.signal,
            onEvent: run.onEvent,
          });
          if (!r.ok) {
            const problems = r.snapshots.flatMap((s) => [
              ...s.problems,
              ...s.files.flatMap((f) => f.problems),
            ]);
            throw new CliError(`Verification failed: ${problems.join('; ')}`);
          }
          return { data: r, exitCode: ExitCode.OK };
        }),
      );
    },
  );

  app.get(
    '/api/retention',
    {
      preHandler: auth,
      schema: {
        querystring: {
          type: 'object',
          properties: {
            keepWithin: policyProps.keepWithin,
            keepLast: { type: 'string', pattern: '^[0-9]{1,6}$' },
            keepDaily: { type: 'string', pattern: '^[0-9]{1,6}$' },
            keepWeekly: { type: 'string', pattern: '^[0-9]{1,6}$' },
          },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const q = req.query as Record<string, string | undefined>;
      const policy = policyOf({
        ...(q.keepWithin ? { keepWithin: q.keepWithin } : {}),
        ...(q.keepLast ? { keepLast: Number(q.keepLast) } : {}),
        ...(q.keepDaily ? { keepDaily: Number(q.keepDaily) } : {}),
        ...(q.keepWeekly ? { keepWeekly: Number(q.keepWeekly) } : {}),
      });
      const { snapshots } = await listSnapshots(root);
      let decisions;
      try {
        decisions = planPrune(snapshots, policy, (o.now ?? Date.now)());
      } catch (err) {
        throw err instanceof CliError ? new HttpError(400, err.message) : err;
      }
      return {
        policy,
        description: describePolicy(policy),
        remove: decisions.filter((d) => !d.keep),
        keep: decisions.filter((d) => d.keep),
      };
    },
  );

  app.post(
    '/api/prune',
    {
      preHandler: auth,
      schema: {
        body: {
          type: 'object',
          required: ['confirm'],
          properties: { ...policyProps, confirm: { const: true } },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const policy = policyOf(req.body as PolicyInput);
      await assertIdle();
      return started(
        reply,
        jobs.start('backups:prune', undefined, async (run) => {
          const r = await pruneBackups({
            root,
            policy,
            signal: run.signal,
            onEvent: run.onEvent,
            command: 'backups:prune (web)',
          });
          return { data: r, exitCode: ExitCode.OK };
        }),
      );
    },
  );

  app.get('/api/maintenance', { preHandler: auth }, async () => {
    const ips = (await fsp.readFile(path.join(root, 'var', '.maintenance.ip'), 'utf8').catch(() => ''))
      .slice(0, 10_000)
      .split(',')
      .map((s) => s.trim())
      .filter((s) => /^[0-9a-fA-F:.]{1,45}$/.test(s));
    return { enabled: await isMaintenanceEnabled(root), exemptIps: ips };
  });

  app.post(
    '/api/maintenance',
    {
      preHandler: auth,
      schema: {
        body: {
          type: 'object',
          required: ['enabled'],
          properties: { enabled: { type: 'boolean' } },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const { enabled } = req.body as { enabled: boolean };
      await assertIdle();
      const command = enabled ? 'maintenance:enable' : 'maintenance:disable';
      // under the store's lock: never flips the flag under a run that will put it back
      let exitCode: number = ExitCode.OK;
      let error: string | undefined;
      try {
        await ensureDir(paths.backupsDir, 0o700);
        const lock = await acquireLock(paths.backupsDir, { command: `${command} (web)` });
        try {
          await setMaintenance(root, enabled);
        } finally {
          await lock.release();
        }
      } catch (err) {
        ({ message: error, exitCode } = errorMessage(err));
        await appendHistory(root, historyEntry({ origin: 'web', command, exitCode, error })).catch(() => {});
        throw err;
      }
      await appendHistory(root, historyEntry({ origin: 'web', command, exitCode, data: {} })).catch(() => {});
      return { enabled: await isMaintenanceEnabled(root) };
    },
  );

  app.get(
    '/api/history',
    {
      preHandler: auth,
      schema: {
        querystring: {
          type: 'object',
          properties: { limit: { type: 'string', pattern: '^[0-9]{1,5}$' } },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const q = req.query as { limit?: string };
      const limit = q.limit ? Number(q.limit) : 200;
      const { entries, skipped } = await readHistory(root);
      const newest = entries.reverse();
      return { entries: limit ? newest.slice(0, limit) : newest, total: entries.length, skipped };
    },
  );

  // live progress: server-sent events; on connect, the current (or last) job with its events so far
  const streams = new Set<NodeJS.WritableStream & { end(): unknown }>();
  app.addHook('preClose', (done) => {
    for (const s of streams) s.end();
    done();
  });
  app.get('/api/events', { preHandler: auth }, (req, reply) => {
    reply.hijack();
    const res = reply.raw;
    streams.add(res);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      Connection: 'keep-alive',
    });
    const send = (name: string, data: unknown) =>
      res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
    send('hello', { job: jobs.view() });
    const onMessage = (m: JobMessage) => send(m.type, m);
    jobs.on('message', onMessage);
    // a CLI run has no events here: its lock is polled and shown as busy, with its holder
    let lastHolder = '';
    const poll = setInterval(() => {
      void lockHolder(root).then((h) => {
        const ours = h && h.pid === process.pid && h.host === os.hostname();
        const key = h && !ours ? JSON.stringify(h) : '';
        if (key !== lastHolder) {
          lastHolder = key;
          send('lock', { holder: h && !ours ? { ...h, text: describeHolder(h) } : null });
        }
      });
      res.write(': keep-alive\n\n');
    }, 1000);
    req.raw.on('close', () => {
      streams.delete(res);
      clearInterval(poll);
      jobs.off('message', onMessage);
    });
  });

  return { app, jobs };
}
