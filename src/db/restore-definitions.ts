/**
 * Views, triggers, routines, events and packages: the dump's (held back during the load, run after the swap
 * exactly as dumped, in a session whose default database is the store's) and the live ones saved before the
 * swap (created again by an undo).
 */
import type { Connection } from 'mysql2/promise';
import { WarningCode } from '../events.js';
import { isServerGone, queryRaw, sqlErrno, sqlMessage } from './restore-connect.js';
import { control, ddl, loader, release, type Ctx } from './restore-context.js';
import {
  describeObject,
  listRoutines,
  listTriggers,
  listViews,
  objKey,
  type ObjectRef,
  type SavedDefinition,
} from './restore-catalog.js';
import type { HeldDefinition } from './restore-journal.js';
import { StatementFailure } from './restore-pool.js';
import { quoteIdent as q } from './sql-values.js';

// definitions

/**
 * Runs the held session statements and definitions, in order, on one connection whose default database is
 * the live one (as they were dumped: nothing in them is rewritten). A definition that fails is retried (with
 * the session statements just before it) after the others, until no more succeed: mariadb-dump creates final
 * views in name order, so a view WITH CHECK OPTION over a view that is still a placeholder fails the first time.
 */
export async function runDefinitions(
  ctx: Ctx,
  held: HeldDefinition[],
): Promise<StatementFailure | undefined> {
  if (!held.some((h) => h.kind !== 'session')) return undefined;
  const conn = await loader(ctx);
  try {
    await conn.query(
      "SET SESSION foreign_key_checks = 0, unique_checks = 0, sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
    );
    const attempt = async (h: HeldDefinition): Promise<StatementFailure | undefined> => {
      try {
        await queryRaw(conn, h.raw);
        return undefined;
      } catch (err) {
        if (isServerGone(err)) throw err;
        return new StatementFailure({ raw: h.raw, line: h.line }, err);
      }
    };
    let retry: { context: HeldDefinition[]; def: HeldDefinition; failure: StatementFailure }[] = [];
    let context: HeldDefinition[] = [];
    for (const h of held) {
      if (h.kind === 'session') {
        context.push(h);
        const f = await attempt(h);
        if (f) return f;
        continue;
      }
      const f = await attempt(h);
      if (f) retry.push({ context, def: h, failure: f });
      context = [];
    }
    while (retry.length > 0) {
      const next: typeof retry = [];
      for (const r of retry) {
        for (const c of r.context) await attempt(c);
        const f = await attempt(r.def);
        if (f) next.push({ ...r, failure: f });
      }
      if (next.length === retry.length) return next[0]!.failure;
      retry = next;
    }
    return undefined;
  } finally {
    await release(ctx, conn);
  }
}

/** DROP … IF EXISTS for one object (packages need Oracle mode for their DROP statement). */
export async function dropObject(ctx: Ctx, conn: Connection, o: ObjectRef): Promise<void> {
  const oracle = o.object === 'package' || o.object === 'package body';
  if (oracle) await conn.query("SET SESSION sql_mode = 'ORACLE'");
  try {
    await ddl(ctx, conn, `DROP ${o.object.toUpperCase()} IF EXISTS ${q(o.name)}`, describeObject(o));
  } finally {
    if (oracle) await conn.query("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'");
  }
}

/** `CREATE [OR REPLACE] [ALGORITHM=…] DEFINER=u@h `, the part before DEFINER captured */
const DEFINER_RE =
  /^CREATE\s+((?:OR\s+REPLACE\s+)?(?:ALGORITHM\s*=\s*\w+\s+)?)DEFINER\s*=\s*(?:`(?:[^`]|``)*`|'[^']*'|[^\s@]+)(?:@(?:`(?:[^`]|``)*`|'[^']*'|\S+))?\s+/i;

/** Creates saved definitions that do not exist now; views are retried in rounds (they may use each other). */
export async function createSaved(
  ctx: Ctx,
  saved: SavedDefinition[],
  only?: (s: SavedDefinition) => boolean,
): Promise<string[]> {
  const conn = await loader(ctx);
  const failed: string[] = [];
  try {
    const ctl = await control(ctx);
    let existing: Set<string>;
    try {
      const trig = await listTriggers(ctl, ctx.live);
      existing = new Set([
        ...(await listViews(ctl, ctx.live)).map((n) => objKey({ object: 'view', name: n })),
        ...(await listRoutines(ctl, ctx.live)).map(objKey),
        ...trig.map((t) => objKey({ object: 'trigger', name: t.name })),
      ]);
    } finally {
      await release(ctx, ctl);
    }
    let todo = saved.filter((s) => !existing.has(objKey(s)) && (!only || only(s)));
    // a routine of another definer is not readable by this user (SHOW CREATE gives no body): it cannot be
    // put back, and trying for ever would keep the database from its old state for nothing
    for (const s of todo) {
      if (s.create.trim() === '') {
        ctx.emit({
          type: 'warning',
          code: WarningCode.DB_DEFINITION,
          message: `${describeObject(s)} of database ${ctx.live} could not be put back: user ${ctx.config.user} may not read its definition (it belongs to another definer)`,
        });
      }
    }
    todo = todo.filter((s) => s.create.trim() !== '');
    while (todo.length > 0) {
      const next: SavedDefinition[] = [];
      let lastErr = '';
      for (const s of todo) {
        try {
          await conn.query('SET SESSION sql_mode = ?, character_set_client = ?, collation_connection = ?', [
            s.sqlMode,
            s.charset,
            s.collation,
          ]);
          if (s.timeZone) await conn.query('SET SESSION time_zone = ?', [s.timeZone]);
          const bytes = Buffer.from(s.create, /^latin1/i.test(s.charset) ? 'latin1' : 'utf8');
          try {
            await queryRaw(conn, bytes);
          } catch (err) {
            // another user's definer needs SUPER/SET USER: the object comes back, defined by this user
            const errno = sqlErrno(err);
            if (errno !== 1227 && errno !== 1044 && errno !== 1142) throw err;
            const mine = s.create.replace(DEFINER_RE, 'CREATE $1');
            if (mine === s.create) throw err;
            await queryRaw(conn, Buffer.from(mine, /^latin1/i.test(s.charset) ? 'latin1' : 'utf8'));
            ctx.emit({
              type: 'warning',
              code: WarningCode.DB_DEFINITION,
              message: `${describeObject(s)} was created again with user ${ctx.config.user} as its definer (its own definer needs a privilege this user lacks)`,
            });
          }
        } catch (err) {
          if (isServerGone(err)) throw err;
          lastErr = `${describeObject(s)}: ${sqlMessage(err)}`;
          next.push(s);
        }
      }
      if (next.length === todo.length) {
        failed.push(...next.map((s) => describeObject(s)));
        if (lastErr) failed.push(lastErr);
        break;
      }
      todo = next;
    }
  } finally {
    await release(ctx, conn);
  }
  return failed;
}

/** A held definition failed after the swap (the commit undoes it). */
export class DefinitionFailure extends Error {
  constructor(readonly failure: StatementFailure) {
    super('definition failed');
  }
}
