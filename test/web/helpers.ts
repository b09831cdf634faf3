import http from 'node:http';
import net from 'node:net';
import { buildServer, type WebServerOptions } from '../../src/web/server.js';
import { makeSecret } from '../../src/web/auth.js';

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: Record<string, unknown>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** A running `serve` of `root` on a free loopback port, with a known token. */
export async function startWeb(root: string, extra: Partial<WebServerOptions> = {}) {
  const port = await freePort();
  const { secret, token } = makeSecret(undefined);
  const { app, jobs } = await buildServer({ root, host: '127.0.0.1', port, secret, ...extra });
  await app.listen({ host: '127.0.0.1', port });
  const base = `http://127.0.0.1:${port}`;
  const responses: string[] = [];

  /** A request with full control of the headers (Host included, which fetch would not let us set). */
  const call = (
    method: string,
    url: string,
    o: {
      body?: unknown;
      cookie?: string;
      csrf?: string;
      host?: string;
      headers?: Record<string, string>;
    } = {},
  ): Promise<Response> =>
    new Promise((resolve, reject) => {
      const body = o.body === undefined ? undefined : JSON.stringify(o.body);
      const headers: Record<string, string> = {
        host: o.host ?? `127.0.0.1:${port}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(o.cookie ? { cookie: o.cookie } : {}),
        ...(o.csrf ? { 'x-csrf-token': o.csrf } : {}),
        ...o.headers,
      };
      const req = http.request({ host: '127.0.0.1', port, method, path: url, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          responses.push(text);
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      });
      req.on('error', reject);
      if (body !== undefined) req.write(body);
      req.end();
    });

  const login = async () => {
    const r = await call('POST', '/api/login', { body: { secret: token } });
    if (r.status !== 200) throw new Error(`login failed: ${r.status} ${r.text}`);
    const cookie = String(r.headers['set-cookie']?.[0] ?? '').split(';')[0]!;
    return { cookie, csrf: String(r.json.csrf) };
  };

  /** Waits for the web job to end (the server's own state, as the pages see it). */
  const waitJob = async (s: { cookie: string }, timeoutMs = 120_000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const st = await call('GET', '/api/status', { cookie: s.cookie });
      const job = st.json.job as { status: string } | null;
      if (job && job.status !== 'running')
        return job as { status: string; message: string; exitCode: number };
      if (Date.now() > until) throw new Error(`job still running: ${st.text}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const close = async () => {
    await jobs.stop();
    await app.close();
  };
  return { app, jobs, port, base, token: token!, call, login, waitJob, close, responses };
}
