/** Snapshots: list, one, download a file of one, and the jobs that create, restore or verify one. */
import { promises as fsp, constants as fsc } from 'node:fs';
import { CliError, ExitCode } from '../errors.js';
import type { Part } from '../events.js';
import { STRIP_GROUPS } from '../db/strip.js';
import { runBackup } from '../backup/run-backup.js';
import { verifyBackups } from '../backup/verify-backups.js';
import { DEFAULT_KEEP_WITHIN } from '../backup/prune.js';
import { restoreSnapshot } from '../restore/snapshot-restore.js';
import { listSnapshots, type SnapshotInfo } from '../store/snapshot-list.js';
import { publicSnapshot } from '../store/snapshot-view.js';
import { HttpError, ID, idParams, snapshotOr404, type WebContext } from './http.js';

const PARTS = ['code', 'media', 'db'] as const;

/** What the pages show of a snapshot: the public view, and until when the default retention keeps it. */
export function snapshotView(s: SnapshotInfo, keepWithin: number) {
  return {
    ...publicSnapshot(s),
    restorable: s.status === 'complete' || s.status === 'legacy',
    restorableUntil: new Date((s.timestamp + keepWithin) * 1000).toISOString(),
  };
}

export function registerSnapshotRoutes(ctx: WebContext): void {
  const { app, auth, root, db, jobs, assertIdle, started } = ctx;

  app.get('/api/snapshots', { preHandler: auth }, async () => {
    const { snapshots } = await listSnapshots(root, ctx.now ? { now: ctx.now } : {});
    return { snapshots: snapshots.map((s) => snapshotView(s, DEFAULT_KEEP_WITHIN)) };
  });

  app.get('/api/snapshots/:id', { preHandler: auth, schema: { params: idParams } }, async (req) => {
    const { id } = req.params as { id: string };
    return snapshotView(await snapshotOr404(ctx, id), DEFAULT_KEEP_WITHIN);
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
      const s = await snapshotOr404(ctx, id);
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
      const s = await snapshotOr404(ctx, id);
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
      await snapshotOr404(ctx, id);
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
}
