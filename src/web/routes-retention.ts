/** Retention: what a policy would keep and remove, and the prune job that applies one. */
import { CliError, ExitCode } from '../errors.js';
import {
  assertPolicy,
  DEFAULT_POLICY,
  describePolicy,
  parseDuration,
  planPrune,
  pruneBackups,
  type RetentionPolicy,
} from '../backup/prune.js';
import { listSnapshots } from '../store/snapshot-list.js';
import { HttpError, type WebContext } from './http.js';

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

function policyOf(body: PolicyInput): RetentionPolicy {
  const p: RetentionPolicy = {};
  if (body.keepWithin !== undefined) {
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

/** The CLI's --keep-within syntax (prune.ts), more than 0 seconds; a 400 naming the field otherwise. */
function parseDurationStrict(text: string): number {
  let total = 0;
  try {
    total = parseDuration(text);
  } catch (err) {
    throw new HttpError(400, `keepWithin "${text}": ${err instanceof Error ? err.message : String(err)}`);
  }
  if (total <= 0) throw new HttpError(400, `keepWithin "${text}" must be longer than 0 seconds`);
  return total;
}

export function registerRetentionRoutes(ctx: WebContext): void {
  const { app, auth, root, jobs, assertIdle, started } = ctx;

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
        decisions = planPrune(snapshots, policy, (ctx.now ?? Date.now)());
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
}
