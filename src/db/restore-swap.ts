/**
 * The swap and its undo: the plan recorded before anything changes, ONE multi-table RENAME TABLE that swaps
 * every table, the foreign-key constraint names given back, the definitions replaced; the undo puts the
 * old tables and definitions back from any point; cleanup drops the restore's own tables and journal.
 * Every step is idempotent: a recovery runs it again after a kill at any point.
 */
import type { Connection } from 'mysql2/promise';
import { control, ddl, release, type Ctx } from './restore-context.js';
import { RestoreError } from './restore-errors.js';
import {
  allTables,
  describeObject,
  fkClause,
  listForeignKeys,
  listRoutines,
  listTriggers,
  listViews,
  objKey,
  rows,
  saveDefinition,
  str,
  type ForeignKey,
  type ObjectRef,
  type SavedDefinition,
} from './restore-catalog.js';
import { createSaved, dropObject, DefinitionFailure, runDefinitions } from './restore-definitions.js';
import {
  journalName,
  oldName,
  RESERVED_PREFIX,
  shadowName,
  writeState,
  type HeldDefinition,
  type JournalState,
} from './restore-journal.js';
import { quoteIdent as q } from './sql-values.js';

// commit, undo, cleanup

/** Whether the RENAME TABLE is still to come (idempotent steps ask this after a kill at any point). */
async function shadowsExist(conn: Connection, state: JournalState): Promise<boolean> {
  const present = new Set(await allTables(conn, state.live));
  if (state.tables.length > 0) return state.tables.some((t) => present.has(shadowName(state.id, t)));
  // nothing loaded (a selective rollback where only definitions differ): the swap moves extra tables only
  return state.dropTables.some((t) => present.has(t) && !present.has(oldName(state.id, t)));
}

/** Looks at the live database and records, before anything changes, what the swap moves and drops. */
export async function planCommit(
  ctx: Ctx,
  conn: Connection,
  state: JournalState,
  dropExtra: boolean,
): Promise<void> {
  const inDump = new Set(state.tables);
  const kept = new Set(state.kept ?? []);
  const live = (await allTables(conn, state.live)).filter((t) => !t.startsWith(RESERVED_PREFIX));
  state.moved = live.filter((t) => inDump.has(t));
  // a kept table was equal to the backup's when it was compared; it must still be there (as a table)
  const liveTables = new Set(live);
  const views = await listViews(conn, state.live);
  for (const t of kept) {
    if (!liveTables.has(t) || views.includes(t)) {
      throw new RestoreError(
        `Table ${t} of database ${state.live} was dropped or replaced while the rollback ran (it was equal to the backup's and kept): run the rollback again`,
      );
    }
  }
  state.autoInc = {};
  for (const x of await rows(
    conn,
    'SELECT TABLE_NAME AS n, AUTO_INCREMENT AS a FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND AUTO_INCREMENT IS NOT NULL',
    [state.live],
  )) {
    if (inDump.has(str(x.n)) || kept.has(str(x.n))) state.autoInc[str(x.n)] = str(x.a);
  }
  const extraTables = live.filter((t) => !inDump.has(t) && !kept.has(t));
  state.dropTables = dropExtra ? extraTables : [];
  state.displacedViews = views.filter((v) => inDump.has(v));
  const dumpKeys = new Set(state.dumpObjects.map(objKey));
  const dumpTriggers = new Set(state.dumpObjects.filter((o) => o.object === 'trigger').map((o) => o.name));
  const movedSet = new Set(state.moved);
  const saved: SavedDefinition[] = [];
  const dropObjects: ObjectRef[] = [];
  const extraObjects: string[] = [];
  for (const v of views) {
    const s = await saveDefinition(conn, state.live, { object: 'view', name: v });
    if (s) saved.push(s);
    if (inDump.has(v)) continue; // displaced by a table, dropped before the swap
    const o: ObjectRef = { object: 'view', name: v };
    if (dumpKeys.has(objKey(o))) dropObjects.push(o);
    else {
      extraObjects.push(describeObject(o));
      if (dropExtra) dropObjects.push(o);
    }
  }
  for (const o of await listRoutines(conn, state.live)) {
    const s = await saveDefinition(conn, state.live, o);
    if (s) saved.push(s);
    if (dumpKeys.has(objKey(o))) dropObjects.push(o);
    else {
      extraObjects.push(describeObject(o));
      if (dropExtra) dropObjects.push(o);
    }
  }
  // packages first (their bodies go with them), then the rest
  dropObjects.sort((a, b) => Number(b.object === 'package') - Number(a.object === 'package'));
  state.keepTriggers = [];
  for (const t of await listTriggers(conn, state.live)) {
    // triggers of extra tables stay with their table (moved out and back with it); a kept table's are replaced
    if (!movedSet.has(t.table) && !kept.has(t.table)) continue;
    const s = await saveDefinition(conn, state.live, { object: 'trigger', ...t });
    if (s) saved.push(s);
    if (!dumpTriggers.has(t.name)) {
      extraObjects.push(`trigger ${t.name}`);
      if (!dropExtra) state.keepTriggers.push(t.name);
    }
  }
  state.saved = saved;
  state.dropObjects = dropObjects;
  state.extraObjects = extraObjects;
  // live foreign keys whose names the new tables will take back
  const wanted = new Set(Object.values(state.newFks));
  state.oldFks = {};
  state.repoint = [];
  let n = 0;
  const liveFks = await listForeignKeys(conn, state.live);
  for (const fk of liveFks) {
    if (
      !inDump.has(fk.table) &&
      !state.dropTables.includes(fk.table) &&
      !fk.table.startsWith(RESERVED_PREFIX) &&
      fk.refDb === state.live &&
      movedSet.has(fk.refTable)
    ) {
      state.repoint.push(fk);
    }
  }
  for (const fk of liveFks) {
    if (!movedSet.has(fk.table) || !wanted.has(fk.name)) continue;
    (state.oldFks[fk.table] ??= {})[`${RESERVED_PREFIX}${state.id}_d${++n}`] = fk.name;
  }
}

/** Renames the foreign keys of `table` by `names` (current → wanted); those already renamed are skipped. */
/** Makes the kept tables' foreign keys in state.repoint reference their table by its live name again. */
async function repointForeignKeys(ctx: Ctx, conn: Connection, state: JournalState): Promise<void> {
  if (!state.repoint?.length) return;
  const fks = await listForeignKeys(conn, state.live);
  for (const want of state.repoint) {
    const cur = fks.find((f) => f.table === want.table && f.name === want.name);
    if (cur && cur.refDb === want.refDb && cur.refTable === want.refTable) continue;
    const what = `table ${want.table}`;
    if (cur) await ddl(ctx, conn, `ALTER TABLE ${q(want.table)} DROP FOREIGN KEY ${q(want.name)}`, what);
    await ddl(
      ctx,
      conn,
      `ALTER TABLE ${q(want.table)} ${fkClause(state.live, want, want.name, want.refTable)}`,
      what,
    );
  }
}

async function renameForeignKeys(
  ctx: Ctx,
  conn: Connection,
  fks: ForeignKey[],
  table: string,
  names: Record<string, string>,
  refs: Record<string, string>,
): Promise<void> {
  const mine = fks.filter((f) => f.table === table && names[f.name] !== undefined);
  if (mine.length === 0) return;
  const clauses: string[] = [];
  for (const f of mine) clauses.push(`DROP FOREIGN KEY ${q(f.name)}`);
  for (const f of mine) clauses.push(fkClause(ctx.live, f, names[f.name]!, refs[f.refTable] ?? f.refTable));
  await ddl(ctx, conn, `ALTER TABLE ${q(table)} ${clauses.join(', ')}`, `table ${table}`);
}

/** From 'committing' to done (idempotent: a recovery runs it again after a kill at any point). */
export async function forward(
  ctx: Ctx,
  state: JournalState,
  held: HeldDefinition[],
): Promise<{ warnings: string[] }> {
  const conn = await control(ctx);
  const warnings: string[] = [];
  try {
    if (await shadowsExist(conn, state)) {
      for (const v of state.displacedViews) {
        await ddl(ctx, conn, `DROP VIEW IF EXISTS ${q(v)}`, `view ${v}`);
      }
      const clauses: string[] = [];
      for (const t of state.moved) clauses.push(`${q(t)} TO ${q(oldName(state.id, t))}`);
      for (const t of state.dropTables) clauses.push(`${q(t)} TO ${q(oldName(state.id, t))}`);
      for (const t of state.tables) clauses.push(`${q(shadowName(state.id, t))} TO ${q(t)}`);
      await ddl(
        ctx,
        conn,
        `RENAME TABLE ${clauses.join(', ')}`,
        `the tables (${[...new Set([...state.moved, ...state.dropTables])].slice(0, 5).join(', ')}${state.moved.length + state.dropTables.length > 5 ? ', …' : ''})`,
      );
    }
    await ctx.onStep?.('swapped');
    // constraint names: the old tables give theirs up, the new ones take the dump's
    let fks = await listForeignKeys(conn, state.live);
    for (const t of state.moved) {
      const names: Record<string, string> = {};
      for (const [tmp, orig] of Object.entries(state.oldFks[t] ?? {})) names[orig] = tmp;
      await renameForeignKeys(ctx, conn, fks, oldName(state.id, t), names, {});
    }
    fks = await listForeignKeys(conn, state.live);
    for (const t of state.tables) await renameForeignKeys(ctx, conn, fks, t, state.newFks, state.refs);
    await repointForeignKeys(ctx, conn, state);
    for (const [t, ai] of Object.entries(state.keptAutoInc ?? {})) {
      if (/^\d+$/.test(ai)) await ddl(ctx, conn, `ALTER TABLE ${q(t)} AUTO_INCREMENT = ${ai}`, `table ${t}`);
    }
    await ctx.onStep?.('constraints-renamed');
    // definitions: the old tables' triggers and the replaced objects go, the dump's come
    for (const s of state.saved) {
      if (s.object === 'trigger')
        await ddl(ctx, conn, `DROP TRIGGER IF EXISTS ${q(s.name)}`, `trigger ${s.name}`);
    }
    for (const o of state.dropObjects) await dropObject(ctx, conn, o);
    // objects of the dump that exist now were created by an interrupted earlier attempt
    for (const o of state.dumpObjects) if (o.object !== 'trigger') await dropObject(ctx, conn, o);
    // the new tables came without triggers, the kept ones' were dropped above: any trigger on them now is from an
    // interrupted earlier attempt
    const newTables = new Set([...state.tables, ...(state.kept ?? [])]);
    for (const t of await listTriggers(conn, state.live)) {
      if (newTables.has(t.table))
        await ddl(ctx, conn, `DROP TRIGGER IF EXISTS ${q(t.name)}`, `trigger ${t.name}`);
    }
    await ctx.onStep?.('definitions-dropped');
    const failure = await runDefinitions(ctx, held);
    if (failure) throw new DefinitionFailure(failure);
    if (state.keepTriggers.length > 0) {
      const keep = new Set(state.keepTriggers);
      const failed = await createSaved(ctx, state.saved, (s) => s.object === 'trigger' && keep.has(s.name));
      if (failed.length > 0) warnings.push(`Could not keep the extra trigger(s) ${failed.join('; ')}`);
    }
    state.phase = 'done';
    await writeState(conn, state);
    await ctx.onStep?.('definitions-created');
  } finally {
    await release(ctx, conn);
  }
  await cleanup(ctx, state);
  return { warnings };
}

/** Drops every table of the restore (shadow or old copies) and, last, its journal; returns those still there. */
export async function cleanup(ctx: Ctx, state: { id: string }): Promise<string[]> {
  const conn = await control(ctx);
  try {
    const prefix = `${RESERVED_PREFIX}${state.id}_`;
    const mine = (await allTables(conn, ctx.live)).filter(
      (t) => t.startsWith(prefix) && t !== journalName(state.id),
    );
    if (mine.length > 0) {
      await ddl(ctx, conn, `DROP TABLE IF EXISTS ${mine.map(q).join(', ')}`, "the restore's own tables");
    }
    await ddl(ctx, conn, `DROP TABLE IF EXISTS ${q(journalName(state.id))}`, 'the restore journal');
    // what is still there (a statement of a session that was ending may have created it meanwhile)
    return (await allTables(conn, ctx.live)).filter((t) => t.startsWith(prefix));
  } finally {
    await release(ctx, conn);
  }
}

/** Puts the old state back from any point after 'committing' (idempotent). */
export async function undo(ctx: Ctx, state: JournalState): Promise<void> {
  const conn = await control(ctx);
  try {
    if (state.phase !== 'undoing') {
      state.phase = 'undoing';
      await writeState(conn, state);
    }
    if (!(await shadowsExist(conn, state))) {
      const present = new Set(await allTables(conn, state.live));
      const swapped = [...state.moved, ...state.dropTables].some((t) => present.has(oldName(state.id, t)));
      // the dump's definitions go (their names may be the old ones'); a kept table's saved triggers come back below
      const newTables = new Set([...state.tables, ...(state.kept ?? [])]);
      for (const t of await listTriggers(conn, state.live)) {
        if (newTables.has(t.table))
          await ddl(ctx, conn, `DROP TRIGGER IF EXISTS ${q(t.name)}`, `trigger ${t.name}`);
      }
      for (const o of state.dumpObjects) {
        if (o.object !== 'trigger') await dropObject(ctx, conn, o);
      }
      if (swapped || state.moved.length + state.dropTables.length === 0) {
        const clauses: string[] = [];
        for (const t of state.tables) {
          if (present.has(t)) clauses.push(`${q(t)} TO ${q(shadowName(state.id, t))}`);
        }
        for (const t of [...state.moved, ...state.dropTables]) {
          if (present.has(oldName(state.id, t))) clauses.push(`${q(oldName(state.id, t))} TO ${q(t)}`);
        }
        if (clauses.length > 0) {
          await ddl(ctx, conn, `RENAME TABLE ${clauses.join(', ')}`, 'the tables');
        }
      }
    }
    // the shadow tables go, which frees the constraint names the old tables take back
    const prefix = `${RESERVED_PREFIX}${state.id}_n`;
    const shadows = (await allTables(conn, state.live)).filter((t) => t.startsWith(prefix));
    if (shadows.length > 0) {
      await ddl(ctx, conn, `DROP TABLE IF EXISTS ${shadows.map(q).join(', ')}`, 'the restored tables');
    }
    const fks = await listForeignKeys(conn, state.live);
    for (const t of state.moved) {
      await renameForeignKeys(ctx, conn, fks, t, state.oldFks[t] ?? {}, {});
    }
    await repointForeignKeys(ctx, conn, state);
    const autoInc = state.autoInc ?? {};
    for (const x of await rows(
      conn,
      'SELECT TABLE_NAME AS n, AUTO_INCREMENT AS a FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND AUTO_INCREMENT IS NOT NULL',
      [state.live],
    )) {
      const want = autoInc[str(x.n)];
      if (want !== undefined && want !== str(x.a) && /^\d+$/.test(want)) {
        await ddl(ctx, conn, `ALTER TABLE ${q(str(x.n))} AUTO_INCREMENT = ${want}`, `table ${str(x.n)}`);
      }
    }
  } finally {
    await release(ctx, conn);
  }
  const failed = await createSaved(ctx, state.saved);
  if (failed.length > 0) {
    throw new RestoreError(
      `Could not create again the previous definition(s) of database ${ctx.live}: ${failed.join('; ')}`,
      { live: 'recovery-pending' },
    );
  }
  await cleanup(ctx, state);
}
