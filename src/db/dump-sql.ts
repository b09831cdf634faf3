/**
 * The SQL text of a dump around the rows: header and footer, comments, and each object's statements (sequences,
 * table heads, triggers, routines, events, views). Pure: no I/O.
 *
 * Definitions are handled as byte strings (one char per byte, `latin1` decoding): SHOW CREATE gives each one in
 * its own character_set_client (a routine created over a latin1 connection comes back in latin1), and it is
 * written back byte for byte after `SET character_set_client` to that charset, as mariadb-dump does.
 * Every name and comment reaches the file only inside a quoted identifier, a literal, or a `-- ` line that a
 * line break cannot leave (commentName, commentText).
 */
import { describeServer } from './connect.js';
import type { EventDef, RoutineDef, SequenceDef, TriggerDef, ViewDef } from './dump-schema.js';
import { ByteSink, quoteIdent, quoteString, writeQuoted } from './sql-values.js';
import type { DbConnectionConfig } from './types.js';

/** DEFINER=`u`@`h` removed from a CREATE statement's head (the object then belongs to whoever loads it). */
export function stripDefiner(create: string): string {
  return create.replace(
    /^(CREATE\s+(?:OR\s+REPLACE\s+)?(?:ALGORITHM\s*=\s*\w+\s+)?)DEFINER\s*=\s*(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|[^\s@]+)(?:\s*@\s*(?:`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'|[^\s]+))?\s+/i,
    '$1',
  );
}

/**
 * Statements the stock client would alter (it strips comments outside strings, and treats `DELIMITER` lines
 * and backslash commands specially) are sent through EXECUTE IMMEDIATE with the text as a string literal.
 */
function needsImmediate(body: string): boolean {
  return /--|#|\/\*|\\|;;|^\s*delimiter\b|\r\n/im.test(body);
}

/** The byte string of an ordinary JS string's UTF-8 (names, comments), to join with definitions' bytes. */
function b8(s: string): string {
  return /^[\x00-\x7f]*$/.test(s) ? s : Buffer.from(s, 'utf8').toString('latin1');
}

function createStatement(create: Buffer, stripDefiners: boolean): string {
  const text = create.toString('latin1');
  return stripDefiners ? stripDefiner(text) : text;
}

/**
 * One statement (a byte string, without its `;`) as the stock client passes it on unchanged: the client drops a
 * CR that stands right before an LF anywhere in its input (it reads lines), even inside a quoted name, so a
 * statement holding CR LF goes through EXECUTE IMMEDIATE with its text as an escaped literal. `cond` wraps a
 * plain statement in a versioned comment.
 */
function stmt(sql: string, cond = ''): string {
  if (sql.includes('\r\n')) return `EXECUTE IMMEDIATE ${quoteBytes(sql)};\n`;
  return cond !== '' ? `/*!${cond} ${sql} */;\n` : `${sql};\n`;
}

/**
 * A table-level statement: always plain. Our restore recognises tables (and loads them under temporary names)
 * only in plain statements, so a CR LF in a table or column name is not wrapped: our restore loads it exactly,
 * the stock client drops the CR (as it does with mariadb-dump's files).
 */
function plain(sql: string): string {
  return `${sql};\n`;
}

/** A byte string as a quoted literal with the usual backslash escaping. */
function quoteBytes(text: string): string {
  const sink = new ByteSink(text.length * 2 + 16);
  writeQuoted(sink, Buffer.from(text, 'latin1'));
  return sink.buf.toString('latin1', 0, sink.len);
}

const NBE = /(^|,)NO_BACKSLASH_ESCAPES(,|$)/i;

/**
 * A string literal (byte string in, byte string out) that reads back as `text` under `sqlMode`, in charset
 * `cs`. With NO_BACKSLASH_ESCAPES a backslash is an ordinary character and only quotes are doubled (the stock
 * client, told the mode by the server, then treats backslashes in strings as ordinary too); a carriage return
 * would be lost there (the client drops CR before LF), so such text goes as a hex literal with its charset.
 * Otherwise the usual escaping.
 */
export function quoteStringFor(text: string, sqlMode: string, cs = 'utf8mb4'): string {
  if (!NBE.test(sqlMode)) return quoteBytes(text);
  if (/[\r\0\x1a]/.test(text)) return `_${cs} 0x${Buffer.from(text, 'latin1').toString('hex')}`;
  return `'${text.replace(/'/g, "''")}'`;
}

/** A compound statement (routine, trigger, event) as the stock client will pass it through untouched. */
function compound(text: string, sqlMode: string, cs: string): string {
  if (needsImmediate(text)) return `EXECUTE IMMEDIATE ${quoteStringFor(text, sqlMode, cs)};\n`;
  return `DELIMITER ;;\n${text} ;;\nDELIMITER ;\n`;
}

/** character_set_client/collation_connection for a stored object: its own (names checked: they are written raw). */
function clientCharset(charset: string, collation: string): { cs: string; coll: string } {
  const ok = (x: string): boolean => /^\w+$/.test(x);
  if (ok(charset) && ok(collation)) return { cs: charset, coll: collation };
  return { cs: 'utf8mb4', coll: 'utf8mb4_general_ci' };
}

function withContext(
  o: { sqlMode: string; cs: string; coll: string; timeZone?: string },
  body: string,
): string {
  let s = `/*!50003 SET @saved_sql_mode = @@sql_mode */;\n/*!50003 SET sql_mode = ${b8(quoteString(o.sqlMode))} */;\n`;
  s += `/*!50003 SET @saved_cs_client = @@character_set_client */;\n/*!50003 SET @saved_col_connection = @@collation_connection */;\n`;
  s += `/*!50003 SET character_set_client = ${o.cs} */;\n/*!50003 SET collation_connection = ${o.coll} */;\n`;
  if (o.timeZone !== undefined)
    s += `/*!50106 SET @save_time_zone = @@TIME_ZONE */;\n/*!50106 SET TIME_ZONE = ${b8(quoteString(o.timeZone))} */;\n`;
  s += body;
  if (o.timeZone !== undefined) s += `/*!50106 SET TIME_ZONE = @save_time_zone */;\n`;
  s += `/*!50003 SET sql_mode = @saved_sql_mode */;\n/*!50003 SET character_set_client = @saved_cs_client */;\n/*!50003 SET collation_connection = @saved_col_connection */;\n`;
  return s;
}

/** Characters that end a `-- ` comment line for some reader (the stock client splits on LF; others on CR, NEL, LS, PS). */
const LINE_BREAKING = /[\x00-\x1f\x7f\u0085\u2028\u2029]/;

/**
 * Text for a `-- ` comment line that no character of it can leave: control and line-breaking characters are
 * written as JSON escapes (the name is then shown as a JSON string), anything else as is.
 */
export function commentText(text: string): string {
  return LINE_BREAKING.test(text) ? JSON.stringify(text) : text;
}

/** A name for a `-- ` comment line: `backquoted` when plain, a JSON string when it holds line breaks or controls. */
export function commentName(name: string): string {
  return LINE_BREAKING.test(name) ? JSON.stringify(name) : quoteIdent(name);
}

/** The `Database:` value of the header: raw when plain, else a JSON string (see dumpedDatabaseFromHeader). */
export function headerDatabase(name: string): string {
  return LINE_BREAKING.test(name) || /^["\s]|\s$/.test(name) || name.includes('\\')
    ? JSON.stringify(name)
    : name;
}

/** The footer: restores the session settings, then the line a restore checks to tell the dump is complete. */
export function footer(now = new Date()): string {
  return FOOTER_TEXT + `-- Dump completed on ${utcStamp(now)}\n`;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}
function utcStamp(d = new Date()): string {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

export function header(cfg: DbConnectionConfig, serverVersion: string): string {
  return `-- magebackup dump of database ${commentName(cfg.database)}
-- Host: ${commentText(describeServer(cfg))}    Database: ${headerDatabase(cfg.database)}
-- ------------------------------------------------------
-- Server version\t${commentText(serverVersion)}

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;

`;
}

const FOOTER_TEXT = `/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;
/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;
/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;

`;

export function triggerSql(tr: TriggerDef, stripDefiners: boolean): string {
  const text = createStatement(tr.create, stripDefiners);
  const { cs, coll } = clientCharset(tr.charset, tr.collation);
  return withContext({ sqlMode: tr.sqlMode, cs, coll }, compound(text, tr.sqlMode, cs)) + '\n';
}

const ROUTINE_LABEL: Record<RoutineDef['type'], string> = {
  FUNCTION: 'Function',
  PROCEDURE: 'Procedure',
  PACKAGE: 'Package',
  'PACKAGE BODY': 'Package body',
};

export function routineSql(r: RoutineDef, stripDefiners: boolean): string {
  const text = createStatement(r.create, stripDefiners);
  const { cs, coll } = clientCharset(r.charset, r.collation);
  const head = b8(`--\n-- ${ROUTINE_LABEL[r.type]} ${commentName(r.name)}\n--\n\n`);
  // packages exist only in their (Oracle) sql_mode: dropped under it; DROP PACKAGE drops the body too
  if (r.type === 'PACKAGE' || r.type === 'PACKAGE BODY') {
    const drop =
      r.type === 'PACKAGE' ? stmt(b8(`DROP PACKAGE IF EXISTS ${quoteIdent(r.name)}`), '50003') : '';
    return head + withContext({ sqlMode: r.sqlMode, cs, coll }, drop + compound(text, r.sqlMode, cs)) + '\n';
  }
  return (
    head +
    stmt(b8(`DROP ${r.type} IF EXISTS ${quoteIdent(r.name)}`), '50003') +
    withContext({ sqlMode: r.sqlMode, cs, coll }, compound(text, r.sqlMode, cs)) +
    '\n'
  );
}

export function eventSql(e: EventDef, stripDefiners: boolean): string {
  const text = createStatement(e.create, stripDefiners);
  const { cs, coll } = clientCharset(e.charset, e.collation);
  return (
    b8(`--\n-- Event ${commentName(e.name)}\n--\n\n`) +
    stmt(b8(`DROP EVENT IF EXISTS ${quoteIdent(e.name)}`), '50106') +
    withContext({ sqlMode: e.sqlMode, cs, coll, timeZone: e.timeZone }, compound(text, e.sqlMode, cs)) +
    '\n'
  );
}

/** Stand-ins with the right columns, so anything created before the final views can refer to them. */
export function viewPlaceholders(views: ViewDef[]): string {
  let s = '--\n-- Temporary view structures\n--\n\n';
  for (const v of [...views].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const cols = v.columns.length > 0 ? v.columns.map((c) => `1 AS ${quoteIdent(c)}`).join(', ') : '1 AS `1`';
    s +=
      stmt(b8(`DROP VIEW IF EXISTS ${quoteIdent(v.name)}`), '50001') +
      stmt(b8(`CREATE VIEW ${quoteIdent(v.name)} AS SELECT ${cols}`), '50001');
  }
  return s + '\n';
}

/** The final view (byte string): created under the header's sql_mode, in the view's own character_set_client. */
export function viewSql(v: ViewDef, stripDefiners: boolean): string {
  const text = createStatement(v.create, stripDefiners);
  const { cs, coll } = clientCharset(v.charset, v.collation);
  return (
    b8(`--\n-- Final view structure for view ${commentName(v.name)}\n--\n\n`) +
    stmt(b8(`DROP VIEW IF EXISTS ${quoteIdent(v.name)}`), '50001') +
    `/*!50001 SET @saved_cs_client = @@character_set_client */;\n/*!50001 SET @saved_col_connection = @@collation_connection */;\n` +
    `/*!50001 SET character_set_client = ${cs} */;\n/*!50001 SET collation_connection = ${coll} */;\n` +
    `${needsImmediate(text) ? `EXECUTE IMMEDIATE ${quoteBytes(text)}` : text};\n` +
    `/*!50001 SET character_set_client = @saved_cs_client */;\n/*!50001 SET collation_connection = @saved_col_connection */;\n\n`
  );
}

/** A sequence: its structure and its next value. */
export function sequenceSql(seq: SequenceDef): string {
  return (
    b8(`--\n-- Sequence structure for ${commentName(seq.name)}\n--\n\n`) +
    plain(b8(`DROP TABLE IF EXISTS ${quoteIdent(seq.name)}`)) +
    plain(seq.create.toString('latin1')) +
    plain(
      b8(
        `DO SETVAL(${quoteIdent(seq.name)}, ${/^-?\d+$/.test(seq.next) ? seq.next : quoteString(seq.next)}, 0)`,
      ),
    ) +
    '\n'
  );
}

/** What comes before a table's CREATE TABLE bytes (which are written as they are, then `;\n\n`). Byte string. */
export function tableHead(name: string): string {
  return (
    b8(`--\n-- Table structure for table ${commentName(name)}\n--\n\n`) +
    plain(b8(`DROP TABLE IF EXISTS ${quoteIdent(name)}`))
  );
}

/** In place of the rows of a table whose engine keeps none of its own (MERGE, FEDERATED, ...). A JS string. */
export function noRowsComment(name: string, engine: string): string {
  return `-- No data for ${commentName(name)}: engine ${commentText(engine)} keeps no rows of its own\n\n`;
}

/** A view that cannot be created (it reads a dropped table or column): its text as a comment, and a DROP. */
export function invalidViewSql(v: ViewDef, stripDefiners: boolean): string {
  const text = createStatement(v.create, stripDefiners);
  return (
    b8(`--\n-- Invalid view ${commentName(v.name)} (not created):\n`) +
    text.replace(/^/gm, '-- ') +
    b8(`\n--\n`) +
    stmt(b8(`DROP VIEW IF EXISTS ${quoteIdent(v.name)}`), '50001') +
    '\n'
  );
}

/** Before a table's rows (a JS string); `history`: the rows keep their row start/end times. */
export function rowsHead(name: string, history: boolean): string {
  const table = quoteIdent(name);
  // as mariadb-dump: autocommit stays on and the table is locked (the stock client loaded the same rows in one
  // transaction per table about 1.8 times slower: measured 111-123 s against 59-67 s for 170 MB of narrow rows)
  let s = `--\n-- Dumping data for table ${commentName(name)}\n--\n\nLOCK TABLES ${table} WRITE;\n/*!40000 ALTER TABLE ${table} DISABLE KEYS */;\n`;
  // history rows keep their row start/end times (MariaDB 10.11+)
  if (history) s += '/*!101100 SET @@session.system_versioning_insert_history = 1 */;\n';
  return s;
}

/** After a table's rows (a JS string). */
export function rowsTail(name: string, history: boolean): string {
  let s = '';
  if (history) s += '/*!101100 SET @@session.system_versioning_insert_history = 0 */;\n';
  return s + `/*!40000 ALTER TABLE ${quoteIdent(name)} ENABLE KEYS */;\nUNLOCK TABLES;\n\n`;
}
