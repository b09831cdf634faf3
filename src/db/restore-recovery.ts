/**
 * Recovery of restores that a killed run left behind, from their journals, before anything reads the
 * database: finish or undo them, drop what is left of the others.
 */
import { WarningCode, type EventSink } from '../events.js';
import type { DbConnectionConfig } from './types.js';
import { isServerGone, sqlMessage } from './restore-connect.js';
import { contextFor, control, release, serverGone } from './restore-context.js';
import { allTables } from './restore-catalog.js';
import {
  JOURNAL_RE,
  OWN_RE,
  readJournal,
  writeState,
  type HeldDefinition,
  type JournalState,
} from './restore-journal.js';

/** What recoverInterruptedRestores does with a restore that was prepared but not committed. */
export type RecoveryDecision = 'forward' | 'back' | undefined;

/**
 * Finishes or undoes restores that a killed run left (see the file comment), before anything reads the
 * database. `decide(id)` chooses for a restore that was prepared or committing ('forward' / 'back');
 * without an answer: a prepared one is dropped (the live database was never touched), a committing one is
 * finished (and undone if it cannot be). Returns one line per thing done.
 */
export async function recoverInterruptedRestores(
  config: DbConnectionConfig,
  decide?: (id: string) => RecoveryDecision,
  o: { onEvent?: EventSink; lockWaitSeconds?: number } = {},
): Promise<string[]> {
  const ctx = contextFor({
    config,
    file: '',
    ...(o.onEvent ? { onEvent: o.onEvent } : {}),
    ...(o.lockWaitSeconds !== undefined ? { lockWaitSeconds: o.lockWaitSeconds } : {}),
  });
  const done: string[] = [];
  const conn = await control(ctx);
  let ids: string[];
  let orphans: string[];
  try {
    const all = await allTables(conn, ctx.live);
    ids = all.map((t) => JOURNAL_RE.exec(t)?.[1]).filter((x): x is string => x !== undefined);
    const withJournal = new Set(ids);
    orphans = [
      ...new Set(
        all
          .map((t) => OWN_RE.exec(t)?.[1])
          .filter((x): x is string => x !== undefined && !withJournal.has(x)),
      ),
    ];
  } finally {
    await release(ctx, conn);
  }
  // Mostly there is nothing to recover: the swap and definition code is imported only when there is.
  if (orphans.length === 0 && ids.length === 0) return done;
  const { cleanup, forward, planCommit, undo } = await import('./restore-swap.js');
  const { DefinitionFailure } = await import('./restore-definitions.js');
  for (const id of orphans) {
    await cleanup(ctx, { id });
    done.push(`dropped the tables of an unfinished restore (${id}) from database ${ctx.live}`);
  }
  for (const id of ids.sort()) {
    const c = await control(ctx);
    let j: { state: JournalState; held: HeldDefinition[] } | undefined;
    try {
      j = await readJournal(c, id);
    } finally {
      await release(ctx, c);
    }
    if (!j || j.state.phase === 'loading') {
      await cleanup(ctx, { id });
      done.push(
        `dropped the shadow tables of an unfinished restore (${id}); database ${ctx.live} was not changed`,
      );
      continue;
    }
    const { state, held } = j;
    if (state.phase === 'done') {
      await cleanup(ctx, state);
      done.push(`dropped the previous tables of database ${ctx.live} left by a finished restore (${id})`);
      continue;
    }
    const choice = decide?.(id) ?? (state.phase === 'prepared' ? 'back' : 'forward');
    if (state.phase === 'prepared') {
      if (choice === 'back') {
        await cleanup(ctx, state);
        done.push(
          `dropped a prepared restore (${id}) that was never committed; database ${ctx.live} was not changed`,
        );
        continue;
      }
      const c2 = await control(ctx);
      try {
        await planCommit(ctx, c2, state, state.dropExtra ?? false);
        state.phase = 'committing';
        await writeState(c2, state);
      } finally {
        await release(ctx, c2);
      }
    }
    if (state.phase === 'committing' && choice === 'forward') {
      try {
        await forward(ctx, state, held);
        done.push(
          `finished the interrupted restore of database ${ctx.live} (${id}): it holds the restored data`,
        );
        continue;
      } catch (err) {
        if (isServerGone(err))
          throw serverGone(ctx, err, 'is still in the middle of a restore', 'recovery-pending');
        ctx.emit({
          type: 'warning',
          code: WarningCode.DB_DEFINITION,
          message: `Could not finish the interrupted restore of database ${ctx.live} (${err instanceof DefinitionFailure ? sqlMessage(err.failure.cause) : sqlMessage(err)}): putting the previous data back`,
        });
      }
    }
    await undo(ctx, state);
    done.push(`undid the interrupted restore of database ${ctx.live} (${id}): it holds its previous data`);
  }
  return done;
}
