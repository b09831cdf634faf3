/**
 * Who may use the web interface: whoever holds the token printed at start (like Jupyter), or knows the password
 * given through MAGEBACKUP_WEB_PASSWORD (kept only as a scrypt hash). A login gives an HttpOnly, SameSite=Strict
 * session cookie and a CSRF token that every state-changing request must send back in a header.
 */
import { randomBytes, scryptSync, timingSafeEqual, createHash } from 'node:crypto';

export const SESSION_COOKIE = 'mbk_session';
export const CSRF_HEADER = 'x-csrf-token';
const SESSION_TTL_MS = 12 * 3600_000;
const MAX_SESSIONS = 100;

export interface Secret {
  kind: 'token' | 'password';
  /** scrypt(secret, salt): the secret itself is not kept */
  check(candidate: string): boolean;
}

function hashed(secret: string, kind: Secret['kind']): Secret {
  const salt = randomBytes(16);
  const hash = scryptSync(secret, salt, 32);
  return {
    kind,
    check(candidate) {
      if (candidate.length > 1024) return false;
      return timingSafeEqual(scryptSync(candidate, salt, 32), hash);
    },
  };
}

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

/** The password from the environment when one is set (at least 12 characters), else a fresh random token. */
export function makeSecret(password: string | undefined): { secret: Secret; token?: string } {
  if (password !== undefined && password !== '') {
    if (password.length < 12) throw new Error('MAGEBACKUP_WEB_PASSWORD must have at least 12 characters');
    return { secret: hashed(password, 'password') };
  }
  const token = newToken();
  return { secret: hashed(token, 'token'), token };
}

interface Session {
  csrf: string;
  expires: number;
}

/** Sessions live in memory: restarting `serve` logs everyone out. */
export class Sessions {
  private readonly byId = new Map<string, Session>();
  constructor(private readonly now: () => number = Date.now) {}

  private key(id: string): string {
    // the map is keyed by a hash: a timing difference on lookup says nothing about a valid id
    return createHash('sha256').update(id).digest('hex');
  }

  create(): { id: string; csrf: string } {
    this.sweep();
    if (this.byId.size >= MAX_SESSIONS) {
      const oldest = this.byId.keys().next().value;
      if (oldest !== undefined) this.byId.delete(oldest);
    }
    const id = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    this.byId.set(this.key(id), { csrf, expires: this.now() + SESSION_TTL_MS });
    return { id, csrf };
  }

  get(id: string | undefined): Session | null {
    if (!id || id.length > 100) return null;
    const s = this.byId.get(this.key(id));
    if (!s) return null;
    if (s.expires < this.now()) {
      this.byId.delete(this.key(id));
      return null;
    }
    return s;
  }

  delete(id: string | undefined): void {
    if (id) this.byId.delete(this.key(id));
  }

  private sweep(): void {
    const now = this.now();
    for (const [k, s] of this.byId) if (s.expires < now) this.byId.delete(k);
  }
}

export function csrfMatches(session: Session, header: unknown): boolean {
  if (typeof header !== 'string' || header.length !== session.csrf.length) return false;
  return timingSafeEqual(Buffer.from(header), Buffer.from(session.csrf));
}

/** The value of one cookie in a Cookie header (no library needed for one name). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    if (part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

export function sessionCookie(id: string): string {
  return `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_TTL_MS / 1000}`;
}

export function clearedCookie(): string {
  return `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The Host header names this server (DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1
 * sends `Host: evil.example`). Allowed: the loopback names, the address it listens on, and `extra` names.
 */
export function hostAllowed(
  header: string | undefined,
  port: number,
  bound: string,
  extra: readonly string[],
): boolean {
  if (!header) return false;
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d+))?$/.exec(header.trim());
  if (!m) return false;
  const name = m[1]!.toLowerCase();
  if (m[2] !== undefined && Number(m[2]) !== port) return false;
  const names = new Set<string>([...LOOPBACK, bound.toLowerCase(), ...extra.map((e) => e.toLowerCase())]);
  if (bound.includes(':')) names.add(`[${bound.toLowerCase()}]`);
  return names.has(name);
}
