/**
 * What a dump statement does, read from its first bytes: which table it belongs to (so that one table's
 * statements go to one connection, in order), whether it sets session state (sent to every connection),
 * defines a view/trigger/routine/event (deferred until the tables are in place), or is a client-side
 * statement the restore skips (USE, CREATE DATABASE, LOCK/UNLOCK TABLES, COMMIT).
 */
import { SqlModeTracker } from './sql-mode.js';
import {
  DEFAULT_LEXING,
  statementHead,
  decodeStringLiteral,
  unquoteIdent,
  type Lexing,
} from './sql-tokens.js';

export type StatementKind =
  | { kind: 'skip'; why: 'use' | 'create-database' | 'lock' | 'transaction'; database?: string }
  /** session state: SET ... (sent to every loading connection, in order) */
  | { kind: 'session' }
  /** belongs to one table (or sequence) */
  | { kind: 'table'; table: string; database?: string; create?: boolean; drop?: boolean }
  /** view, trigger, routine, event or database-attribute definition: created once the tables are in place */
  | { kind: 'definition'; object: DefinitionObject }
  /**
   * anything else: runs alone, after everything before it; `table` when it wraps a table statement in
   * EXECUTE IMMEDIATE (which the restore cannot redirect to a shadow table)
   */
  | { kind: 'barrier'; table?: string };

export type DefinitionObject =
  'view' | 'trigger' | 'procedure' | 'function' | 'event' | 'package' | 'package body' | 'database';

const IDENT = String.raw`(?:\`(?:[^\`]|\`\`)+\`|[\w$\u0080-\uffff]+)`;
const QUALIFIED = String.raw`(${IDENT})(?:\s*\.\s*(${IDENT}))?`;
/** Under ANSI_QUOTES a "double-quoted" name is an identifier too (a routine or trigger created in that mode). */
const IDENT_ANSI = String.raw`(?:"(?:[^"]|"")+"|${IDENT})`;
const QUALIFIED_ANSI = String.raw`(${IDENT_ANSI})(?:\s*\.\s*(${IDENT_ANSI}))?`;
const qualified = (lex: Lexing): string => (lex.ansiQuotes ? QUALIFIED_ANSI : QUALIFIED);

/** `db`.`t` → t (and its database); `t` → t. */
function tableOf(m: RegExpExecArray, first: number): { table: string; database?: string } {
  const a = m[first];
  const b = m[first + 1];
  if (b !== undefined && a !== undefined) return { table: unquoteIdent(b), database: unquoteIdent(a) };
  return { table: unquoteIdent(a ?? '') };
}

const RE = {
  use: new RegExp(String.raw`^USE\s+(${IDENT})`, 'i'),
  createDb: new RegExp(
    String.raw`^CREATE\s+(?:OR\s+REPLACE\s+)?(?:DATABASE|SCHEMA)\s+(?:IF\s+NOT\s+EXISTS\s+)?(${IDENT})`,
    'i',
  ),
  lock: /^(?:LOCK|UNLOCK)\s+TABLES?\b/i,
  tx: /^(?:COMMIT|START\s+TRANSACTION|BEGIN|ROLLBACK)\b/i,
  set: /^SET\b/i,
  executeImmediate: /^EXECUTE\s+IMMEDIATE\s+((?:'|")[\s\S]*)$/i,
  /** our dumper's form for a NO_BACKSLASH_ESCAPES body with a carriage return: `_charset 0x<hex>` */
  executeImmediateHex: /^EXECUTE\s+IMMEDIATE\s+(?:_\w+\s*)?0x((?:[0-9a-f]{2})+)/i,
  dropTable: new RegExp(
    String.raw`^DROP\s+(?:TEMPORARY\s+)?(?:TABLE|SEQUENCE)\s+(?:IF\s+EXISTS\s+)?${QUALIFIED}\s*(,)?`,
    'i',
  ),
  createTable: new RegExp(
    String.raw`^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?(?:TABLE|SEQUENCE)\s+(?:IF\s+NOT\s+EXISTS\s+)?${QUALIFIED}`,
    'i',
  ),
  alterTable: new RegExp(
    String.raw`^(?:ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?(?:TABLE|SEQUENCE)|TRUNCATE(?:\s+TABLE)?)\s+(?:IF\s+EXISTS\s+)?${QUALIFIED}`,
    'i',
  ),
  insert: new RegExp(
    String.raw`^(?:INSERT|REPLACE)\s+(?:(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\s+)*(?:INTO\s+)?${QUALIFIED}`,
    'i',
  ),
  setval: new RegExp(String.raw`^(?:SELECT|DO)\s+SETVAL\s*\(\s*${QUALIFIED}`, 'i'),
  definitionDrop: /^DROP\s+(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|PACKAGE\s+BODY|PACKAGE)\b/i,
  alterDefinition:
    /^ALTER\s+(?:ALGORITHM\s*=\s*\w+\s+)?(?:DEFINER\s*=\s*\S+\s+)?(?:SQL\s+SECURITY\s+\w+\s+)?(VIEW|EVENT|PROCEDURE|FUNCTION)\b/i,
  alterDatabase: /^ALTER\s+(?:DATABASE|SCHEMA)\b/i,
  create: /^CREATE\b/i,
  createKind:
    /\b(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|PACKAGE\s+BODY|PACKAGE|TABLE|SEQUENCE|INDEX|DATABASE|SCHEMA|USER|ROLE|SERVER)\b/i,
};

const OBJECTS: Record<string, DefinitionObject> = {
  VIEW: 'view',
  TRIGGER: 'trigger',
  PROCEDURE: 'procedure',
  FUNCTION: 'function',
  EVENT: 'event',
  PACKAGE: 'package',
  'PACKAGE BODY': 'package body',
};

function objectOf(word: string): DefinitionObject {
  const w = word.toUpperCase().replace(/\s+/g, ' ');
  return OBJECTS[w] ?? 'database';
}

/**
 * The object a definition statement creates or drops: `{object, name, drop}`, read from its head; undefined for
 * anything else (session statements, ALTER DATABASE, unreadable heads).
 */
export function definitionTarget(
  head: string,
  lex: Lexing = DEFAULT_LEXING,
): { object: Exclude<DefinitionObject, 'database'>; name: string; drop: boolean } | undefined {
  let text = head;
  const ei = RE.executeImmediate.exec(text);
  if (ei) text = decodeStringLiteral(ei[1] ?? '', lex.noBackslashEscapes).trim();
  const drop = new RegExp(
    String.raw`^DROP\s+(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|PACKAGE\s+BODY|PACKAGE)\s+(?:IF\s+EXISTS\s+)?${qualified(lex)}`,
    'i',
  ).exec(text);
  if (drop) {
    const o = objectOf(drop[1]!);
    if (o === 'database') return undefined;
    return { object: o, name: tableOf(drop, 2).table, drop: true };
  }
  if (!RE.create.test(text)) return undefined;
  const bare = text.replace(/DEFINER\s*=\s*(?:'[^']*'|`[^`]*`|[^\s@]+)(?:@(?:'[^']*'|`[^`]*`|\S+))?/i, '');
  const m = new RegExp(
    String.raw`\b(VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|PACKAGE\s+BODY|PACKAGE)\s+(?:IF\s+NOT\s+EXISTS\s+)?${qualified(lex)}`,
    'i',
  ).exec(bare);
  if (!m) return undefined;
  const o = objectOf(m[1]!);
  if (o === 'database') return undefined;
  return { object: o, name: tableOf(m, 2).table, drop: false };
}

/**
 * The objects held definitions create (drops left out), in order, each read in the sql_mode the session
 * statements held before it set (an EXECUTE IMMEDIATE literal under NO_BACKSLASH_ESCAPES keeps its backslashes).
 */
export function createdObjects(
  held: readonly { kind: string; raw: Buffer }[],
): { object: Exclude<DefinitionObject, 'database'>; name: string }[] {
  const mode = new SqlModeTracker();
  const out: { object: Exclude<DefinitionObject, 'database'>; name: string }[] = [];
  for (const h of held) {
    if (h.kind === 'session') {
      mode.apply(h.raw.toString('latin1'));
      continue;
    }
    const lex: Lexing = {
      ...DEFAULT_LEXING,
      noBackslashEscapes: mode.noBackslashEscapes,
      ansiQuotes: mode.ansiQuotes,
    };
    const t = definitionTarget(statementHead(h.raw, undefined, lex), lex);
    if (t && !t.drop) out.push({ object: t.object, name: t.name });
  }
  return out;
}

/** The table a CREATE TRIGGER statement's head attaches the trigger to (undefined for anything else). */
export function triggerTable(head: string, lex: Lexing = DEFAULT_LEXING): string | undefined {
  const ei = RE.executeImmediate.exec(head);
  const text = ei ? decodeStringLiteral(ei[1] ?? '', lex.noBackslashEscapes).trim() : head;
  const m = new RegExp(
    String.raw`\bTRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?${qualified(lex)}\s+(?:BEFORE|AFTER)\s+\w+(?:\s+OR\s+\w+)*\s+ON\s+${qualified(lex)}`,
    'i',
  ).exec(text);
  return m ? tableOf(m, 3).table : undefined;
}

/** What EXECUTE IMMEDIATE '<inner>' is: a definition is held like any other; the rest runs alone. */
function wrapped(inner: StatementKind): StatementKind {
  if (inner.kind === 'definition') return inner;
  return inner.kind === 'table' ? { kind: 'barrier', table: inner.table } : { kind: 'barrier' };
}

/**
 * Classifies one statement by its head (see statementHead); `lex`: how the session reads it (an EXECUTE
 * IMMEDIATE literal under NO_BACKSLASH_ESCAPES keeps its backslashes).
 */
export function classifyStatement(head: string, lex: Lexing = DEFAULT_LEXING): StatementKind {
  let m: RegExpExecArray | null;
  if ((m = RE.use.exec(head))) return { kind: 'skip', why: 'use', database: unquoteIdent(m[1] ?? '') };
  if ((m = RE.createDb.exec(head)))
    return { kind: 'skip', why: 'create-database', database: unquoteIdent(m[1] ?? '') };
  if (RE.lock.test(head)) return { kind: 'skip', why: 'lock' };
  if (RE.tx.test(head)) return { kind: 'skip', why: 'transaction' };
  if (RE.set.test(head)) return { kind: 'session' };
  if ((m = RE.executeImmediate.exec(head))) {
    // a definition whose text cannot sit in a DELIMITER block (our dumper writes some this way)
    return wrapped(classifyStatement(decodeStringLiteral(m[1] ?? '', lex.noBackslashEscapes).trim(), lex));
  }
  if ((m = RE.executeImmediateHex.exec(head))) {
    return wrapped(classifyStatement(Buffer.from(m[1]!, 'hex').toString('utf8').trim(), lex));
  }
  if ((m = RE.insert.exec(head))) return { kind: 'table', ...tableOf(m, 1) };
  if ((m = RE.dropTable.exec(head))) {
    if (m[3] === ',') return { kind: 'barrier' };
    return { kind: 'table', ...tableOf(m, 1), drop: true };
  }
  if ((m = RE.definitionDrop.exec(head))) return { kind: 'definition', object: objectOf(m[1]!) };
  if ((m = RE.createTable.exec(head))) return { kind: 'table', ...tableOf(m, 1), create: true };
  if ((m = RE.alterTable.exec(head))) return { kind: 'table', ...tableOf(m, 1) };
  if ((m = RE.setval.exec(head))) return { kind: 'table', ...tableOf(m, 1) };
  if ((m = RE.alterDefinition.exec(head)))
    return { kind: 'definition', object: m[1]!.toLowerCase() as 'view' };
  if (RE.alterDatabase.test(head)) return { kind: 'definition', object: 'database' };
  if (RE.create.test(head)) {
    // CREATE [OR REPLACE] [ALGORITHM=..] [DEFINER=..] [SQL SECURITY ..] [AGGREGATE] VIEW|TRIGGER|...
    const k = RE.createKind.exec(
      head.replace(/DEFINER\s*=\s*(?:'[^']*'|`[^`]*`|[^\s@]+)(?:@(?:'[^']*'|`[^`]*`|\S+))?/i, ''),
    );
    const what = k?.[1] !== undefined ? objectOf(k[1]) : undefined;
    if (what !== undefined && what !== 'database') return { kind: 'definition', object: what };
    if (k?.[1] !== undefined && /^INDEX$/i.test(k[1])) {
      const on = new RegExp(String.raw`\bON\s+${QUALIFIED}`, 'i').exec(head);
      if (on) return { kind: 'table', ...tableOf(on, 1) };
    }
  }
  return { kind: 'barrier' };
}
