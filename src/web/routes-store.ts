/** The store and the server: status, maintenance mode, the history log, and live progress (server-sent events). */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { ExitCode } from '../errors.js';
import { noEvents } from '../events.js';
import { STRIP_GROUPS } from '../db/strip.js';
import { DEFAULT_POLICY, describePolicy } from '../backup/prune.js';
import { acquireStoreLock } from '../store/lock.js';
import { deadRunNotice, isMaintenanceEnabled, setMaintenance } from '../maintenance/maintenance.js';
import { appendHistory, readHistory } from '../history/history.js';
import { historyEntry } from '../history/summary.js';
import { errorMessage, type JobMessage } from './jobs.js';
import { holderView, lockHolder, type WebContext } from './http.js';

export function registerStoreRoutes(ctx: WebContext): void {
  const { app, auth, root, paths, jobs, assertIdle } = ctx;

  app.get('/api/status', { preHandler: auth }, async () => {
    const holder = await lockHolder(paths);
    return {
      root,
      busy: jobs.busy || holder !== null,
      holder: holderView(holder),
      job: jobs.view(),
      maintenance: await isMaintenanceEnabled(root),
      deadRun: await deadRunNotice(root),
      stripGroups: Object.keys(STRIP_GROUPS),
      defaultPolicy: describePolicy(DEFAULT_POLICY),
    };
  });

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
        const lock = await acquireStoreLock(paths, { command: `${command} (web)`, onEvent: noEvents });
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
      void lockHolder(paths).then((h) => {
        const holder = holderView(h);
        const key = holder ? JSON.stringify(h) : '';
        if (key !== lastHolder) {
          lastHolder = key;
          send('lock', { holder });
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
}
