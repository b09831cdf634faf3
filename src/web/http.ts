/**
 * What the route modules of the web interface (routes-*.ts) share: the context buildServer gives them, the HTTP
 * error they throw, the common schemas, and who holds the store's lock.
 */
import os from 'node:os';
import type { FastifyInstance, FastifyReply, preHandlerHookHandler } from 'fastify';
import { CliError } from '../errors.js';
import { readLock, isPidAlive, LOCK_FILE, type LockInfo } from '../fs/lock.js';
import path from 'node:path';
import type { DbFlags } from '../db/config.js';
import { getSnapshot, type SnapshotInfo } from '../store/snapshot-list.js';
import type { StorePaths } from '../store/paths.js';
import type { Jobs } from './jobs.js';

/** An HTTP error with a message for the page; never a stack trace. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export interface WebContext {
  app: FastifyInstance;
  root: string;
  paths: StorePaths;
  jobs: Jobs;
  db: { flags: DbFlags; env: NodeJS.ProcessEnv };
  now: (() => number) | undefined;
  /** the preHandler of every /api route but login and session: a session, and a CSRF token on a state change */
  auth: preHandlerHookHandler;
  /** refuses to start while a run (the CLI's, or this server's) holds the store */
  assertIdle: () => Promise<void>;
  /** answers 202 with the job just started */
  started: (reply: FastifyReply, job: ReturnType<Jobs['start']>) => FastifyReply;
}

export const ID = { type: 'string', pattern: '^[0-9]{1,12}$' } as const;
export const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: ID },
  additionalProperties: false,
} as const;

/** A snapshot by id; 404 when there is none. */
export async function snapshotOr404(ctx: WebContext, id: string): Promise<SnapshotInfo> {
  return getSnapshot(ctx.root, id, ctx.now ? { now: ctx.now } : {}).catch((err: unknown) => {
    throw err instanceof CliError ? new HttpError(404, err.message) : err;
  });
}

/** The store's lock, if a live run holds it (a CLI run, or this server's own job). */
export async function lockHolder(paths: StorePaths): Promise<LockInfo | null> {
  const info = await readLock(path.join(paths.backupsDir, LOCK_FILE));
  if (!info) return null;
  // a dead run's lock: the next run takes it over
  if (info.host === os.hostname() && !isPidAlive(info.pid)) return null;
  return info;
}

/** The holder as the pages show it; null when it is this server itself (its job is shown instead). */
export function holderView(h: LockInfo | null): (LockInfo & { text: string }) | null {
  const ours = h && h.pid === process.pid && h.host === os.hostname();
  return h && !ours ? { ...h, text: describeHolder(h) } : null;
}

export function describeHolder(h: LockInfo): string {
  return `${h.command} (pid ${h.pid} on ${h.host}, started ${h.started})`;
}
