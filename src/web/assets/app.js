// magebackup web interface: plain JavaScript, no build step, no CDN. Everything from the server is put in the
// page as text (textContent), never as HTML.
// One file of ~850 lines on purpose: the server ships exactly three static assets read once at start (see
// src/web/routes-session.ts) and the CSP allows only this script; it reads top-down as helpers, then one
// function per page (backups, snapshot, create, restore, progress, history, retention, maintenance), then routing.
'use strict';

const state = { csrf: null, job: null, holder: null, events: null, focusNext: true };
const main = () => document.getElementById('main');

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

async function api(method, url, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
  const res = await fetch(url, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    if (res.status === 401 && url !== '/api/login') {
      state.csrf = null;
      showLogin();
    }
    throw new ApiError(res.status, data.error || `${res.status} ${res.statusText}`, data);
  }
  return data;
}

function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}
function when(iso) {
  const d = new Date(iso);
  return `${d.toLocaleString()} `;
}
function age(seconds) {
  if (seconds < 60) return `${seconds}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${m % 60}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}
function badge(status) {
  return h('span', { class: `badge s-${status}` }, status === 'legacy' ? 'complete (no manifest)' : status);
}
function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err instanceof Error ? err.message : String(err));
}
function table(headers, rows, caption) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      caption ? h('caption', { class: 'hint' }, caption) : null,
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          headers.map((x) => h('th', { scope: 'col' }, x)),
        ),
      ),
      h('tbody', {}, rows),
    ),
  );
}

/** Renders a page: a heading that takes the focus (screen readers announce the new page), then content. */
function page(title, ...content) {
  document.title = `${title} · magebackup`;
  const m = main();
  m.replaceChildren(h('h1', { tabindex: '-1', id: 'page-title' }, title), ...content);
  // a new page takes the focus; a live update of the same page leaves it where the user is
  if (state.focusNext) document.getElementById('page-title').focus();
  state.focusNext = false;
  for (const a of document.querySelectorAll('nav a')) {
    const here = a.getAttribute('href') === (location.hash || '#/').replace(/^(#\/[a-z]*).*$/, '$1');
    if (here) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

// ---- login --------------------------------------------------------------------------------------------

async function login(secret) {
  const r = await api('POST', '/api/login', { secret });
  state.csrf = r.csrf;
  startEvents();
}

function showLogin(message) {
  stopEvents();
  const input = h('input', {
    type: 'password',
    id: 'secret',
    name: 'secret',
    autocomplete: 'current-password',
    required: true,
  });
  const out = h('div', { 'aria-live': 'assertive' }, message ? errorBox(message) : null);
  const form = h(
    'form',
    {
      onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await login(input.value);
          await afterLogin();
        } catch (err) {
          out.replaceChildren(errorBox(err));
          input.focus();
        }
      },
    },
    h('label', { for: 'secret' }, 'Token or password'),
    input,
    h(
      'p',
      { class: 'hint' },
      'The token is printed by "magebackup serve" when it starts; a password is the one set in MAGEBACKUP_WEB_PASSWORD.',
    ),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Log in')),
  );
  page('Log in', out, form);
  input.focus();
}

// ---- live state (server-sent events) ------------------------------------------------------------------

function stopEvents() {
  if (state.events) state.events.close();
  state.events = null;
}

function startEvents() {
  stopEvents();
  const es = new EventSource('/api/events');
  state.events = es;
  const onJob = (job) => {
    state.job = job;
    renderBusy();
    if (currentRoute() === 'progress') renderProgress();
  };
  es.addEventListener('hello', (e) => onJob(JSON.parse(e.data).job));
  es.addEventListener('job', (e) => onJob(JSON.parse(e.data).job));
  es.addEventListener('end', (e) => {
    onJob(JSON.parse(e.data).job);
    if (['', 'snapshot'].includes(currentRoute())) route();
  });
  es.addEventListener('event', (e) => {
    const { jobId, event } = JSON.parse(e.data);
    const job = state.job;
    if (!job || job.id !== jobId) return;
    if (event.type === 'progress') job.progress[event.part] = event;
    else job.events.push(event);
    if (currentRoute() === 'progress') renderProgress();
  });
  es.addEventListener('lock', (e) => {
    state.holder = JSON.parse(e.data).holder;
    renderBusy();
    if (currentRoute() === 'progress') renderProgress();
  });
}

function running() {
  return state.job && state.job.status === 'running';
}

function renderBusy() {
  const el = document.getElementById('busy');
  if (running()) {
    el.replaceChildren(
      `Busy: ${state.job.command}${state.job.snapshot ? ` ${state.job.snapshot}` : ''} is running. `,
      h('a', { href: '#/progress' }, 'See its progress'),
    );
  } else if (state.holder) {
    el.replaceChildren(`Busy: the store is locked by a command-line run: ${state.holder.text}`);
  } else el.replaceChildren();
}

// ---- pages --------------------------------------------------------------------------------------------

/** What the list and a snapshot's page both show of it. */
function problemList(problems) {
  return problems.length
    ? h(
        'ul',
        { class: 'problems' },
        problems.map((p) => h('li', {}, p)),
      )
    : null;
}
const partsText = (s) => s.parts.join(', ') || '–';
const restorableText = (s) => (s.restorable ? when(s.restorableUntil) : 'not restorable');

async function backupsPage() {
  const { snapshots } = await api('GET', '/api/snapshots');
  const rows = snapshots.map((s) =>
    h(
      'tr',
      {},
      h('td', {}, h('a', { href: `#/snapshot/${s.id}` }, s.id)),
      h('td', {}, when(s.created)),
      h('td', {}, age(s.age)),
      h('td', {}, partsText(s)),
      h('td', { class: 'num' }, bytes(s.totalSize)),
      h('td', {}, badge(s.status), problemList(s.problems)),
      h('td', {}, restorableText(s)),
    ),
  );
  page(
    'Backups',
    h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/create' }, 'Create a backup')),
    snapshots.length
      ? table(['ID', 'Time', 'Age', 'Parts', 'Size', 'Status', 'Restorable until'], rows, 'Newest first')
      : h('p', {}, 'No backups yet.'),
  );
}

async function startJob(url, body) {
  try {
    const r = await api('POST', url, body);
    state.job = r.job;
    renderBusy();
    location.hash = '#/progress';
    return null;
  } catch (err) {
    return err;
  }
}

async function snapshotPage(id) {
  const s = await api('GET', `/api/snapshots/${encodeURIComponent(id)}`);
  const out = h('div', { 'aria-live': 'assertive' });
  const verify = (deep) => async () => {
    const err = await startJob(`/api/snapshots/${s.id}/verify`, { deep });
    if (err) out.replaceChildren(errorBox(err));
  };
  const files = s.files.map((f) =>
    h(
      'tr',
      {},
      h('td', {}, f.kind),
      h('td', {}, f.name),
      h('td', { class: 'num' }, bytes(f.size)),
      h(
        'td',
        {},
        f.kind === 'partial' || f.kind === 'marker'
          ? '–'
          : h(
              'a',
              { href: `/api/snapshots/${s.id}/files/${encodeURIComponent(f.name)}`, download: f.name },
              `Download ${f.name}`,
            ),
      ),
    ),
  );
  page(
    `Snapshot ${s.id}`,
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Time'),
      h('dd', {}, when(s.created)),
      h('dt', {}, 'Age'),
      h('dd', {}, age(s.age)),
      h('dt', {}, 'Status'),
      h('dd', {}, badge(s.status)),
      h('dt', {}, 'Parts'),
      h('dd', {}, partsText(s)),
      h('dt', {}, 'Size'),
      h('dd', {}, bytes(s.totalSize)),
      h('dt', {}, 'Restorable until'),
      h('dd', {}, restorableText(s)),
    ),
    problemList(s.problems),
    out,
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'button', onclick: verify(false) }, 'Verify'),
      h('button', { type: 'button', class: 'secondary', onclick: verify(true) }, 'Deep verify'),
      s.restorable ? h('a', { class: 'button', href: `#/restore/${s.id}` }, 'Restore…') : null,
    ),
    h(
      'p',
      { class: 'hint' },
      'Verify checks sizes and SHA-256 sums and reads every archive and dump to its end; deep verify also extracts each archive and loads the dump into a throwaway database.',
    ),
    h('h2', {}, 'Files'),
    table(['Kind', 'File', 'Size', 'Download'], files),
    s.manifest ? h('h2', {}, 'Manifest') : null,
    s.manifest ? h('pre', { tabindex: '0' }, JSON.stringify(s.manifest, null, 2)) : null,
  );
}

async function createPage() {
  const status = await api('GET', '/api/status');
  const out = h('div', { 'aria-live': 'assertive' });
  const check = (name, value, label, checked, hint) =>
    h(
      'label',
      { class: 'check' },
      h('input', { type: 'checkbox', name, value, checked }),
      h('span', {}, label, hint ? h('span', { class: 'hint' }, ` — ${hint}`) : null),
    );
  const form = h(
    'form',
    {},
    h(
      'fieldset',
      {},
      h('legend', {}, 'Parts'),
      check('part', 'code', 'Code tree', true, '<ts>_filesystem.tgz'),
      check('part', 'media', 'Media (pub/media)', true, '<ts>_filesystem_media.tgz'),
      check('part', 'db', 'Database', true, '<ts>_db.sql'),
    ),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Options'),
      check('compress', 'yes', 'Compress the database dump (gzip)', false),
      check(
        'maintenance',
        'yes',
        'Turn maintenance mode on during the backup',
        true,
        'put back as it was afterwards',
      ),
    ),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Tables to dump without their data (strip groups)'),
      status.stripGroups.map((g) => check('strip', g, `@${g}`, false)),
    ),
  );
  const review = h('div', {});
  const next = h(
    'button',
    {
      type: 'button',
      onclick: () => {
        const fd = new FormData(form);
        const body = {
          parts: fd.getAll('part'),
          compress: fd.has('compress'),
          maintenance: fd.has('maintenance'),
          strip: fd.getAll('strip'),
          confirm: true,
        };
        if (!body.parts.length) {
          out.replaceChildren(errorBox('Choose at least one part'));
          return;
        }
        const go = h(
          'button',
          {
            type: 'button',
            onclick: async () => {
              go.disabled = true;
              const err = await startJob('/api/snapshots', body);
              if (err) {
                out.replaceChildren(errorBox(err));
                go.disabled = false;
              }
            },
          },
          'Create the backup now',
        );
        review.replaceChildren(
          h(
            'div',
            { class: 'notice', role: 'region', 'aria-label': 'Confirm' },
            h('h2', {}, 'Confirm'),
            h(
              'p',
              {},
              `Back up ${body.parts.join(', ')}` +
                `${body.compress ? ', dump compressed' : ''}` +
                `${body.strip.length ? `, without the data of ${body.strip.map((g) => '@' + g).join(' ')}` : ''}` +
                `${body.maintenance ? ', with maintenance mode on meanwhile (the shop shows its maintenance page)' : ', shop stays online'}.`,
            ),
            h(
              'div',
              { class: 'actions' },
              go,
              h(
                'button',
                { type: 'button', class: 'secondary', onclick: () => review.replaceChildren() },
                'Cancel',
              ),
            ),
          ),
        );
        go.focus();
      },
    },
    'Review…',
  );
  page('Create a backup', out, form, h('div', { class: 'actions' }, next), review);
}

function lossText(s) {
  const since = when(s.created);
  const lost = [];
  if (s.parts.includes('db'))
    lost.push(
      `orders, customers and admin changes made since ${since} (the database goes back to that time)`,
    );
  if (s.parts.includes('code')) lost.push(`code and configuration changes deployed since ${since}`);
  if (s.parts.includes('media')) lost.push(`images and files uploaded to pub/media since ${since}`);
  return lost;
}

async function restorePage(id) {
  const s = await api('GET', `/api/snapshots/${encodeURIComponent(id)}`);
  const out = h('div', { 'aria-live': 'assertive' });
  if (!s.restorable) {
    page(`Restore snapshot ${s.id}`, errorBox(`Snapshot ${s.id} is ${s.status} and cannot be restored.`));
    return;
  }
  const input = h('input', {
    type: 'text',
    id: 'confirm-id',
    autocomplete: 'off',
    inputmode: 'numeric',
    'aria-describedby': 'confirm-hint',
  });
  const go = h('button', { type: 'submit', class: 'danger', disabled: true }, `Restore snapshot ${s.id}`);
  input.addEventListener('input', () => (go.disabled = input.value.trim() !== s.id));
  const drop = h('input', { type: 'checkbox', id: 'drop-extra' });
  const maint = h('input', { type: 'checkbox', id: 'maint', checked: true });
  const form = h(
    'form',
    {
      onsubmit: async (ev) => {
        ev.preventDefault();
        go.disabled = true;
        const err = await startJob(`/api/snapshots/${s.id}/restore`, {
          confirmId: input.value.trim(),
          dropExtraTables: drop.checked,
          maintenance: maint.checked,
        });
        if (err) {
          out.replaceChildren(errorBox(err));
          go.disabled = false;
        }
      },
    },
    h(
      'fieldset',
      {},
      h('legend', {}, 'Options'),
      h(
        'label',
        { class: 'check', for: 'maint' },
        maint,
        h('span', {}, 'Maintenance mode on during the restore'),
      ),
      h(
        'label',
        { class: 'check', for: 'drop-extra' },
        drop,
        h('span', {}, 'Drop tables and objects created after the backup (default: keep them and warn)'),
      ),
    ),
    h('label', { for: 'confirm-id' }, `Type the snapshot id ${s.id} to confirm`),
    input,
    h('p', { class: 'hint', id: 'confirm-hint' }, 'The button is enabled once the id matches.'),
    h(
      'div',
      { class: 'actions' },
      go,
      h('a', { class: 'button secondary', href: `#/snapshot/${s.id}` }, 'Cancel'),
    ),
  );
  page(
    `Restore snapshot ${s.id}`,
    h(
      'div',
      { class: 'warning', role: 'note' },
      h('h2', {}, 'This replaces the live store'),
      h('p', {}, `Restoring ${s.parts.join(', ')} from ${when(s.created)} loses:`),
      h(
        'ul',
        {},
        lossText(s).map((t) => h('li', {}, t)),
      ),
      h('p', {}, 'Everything is verified before anything changes; no backup is deleted.'),
    ),
    out,
    form,
  );
}

function renderProgress() {
  const job = state.job;
  const content = [];
  if (state.holder) {
    content.push(
      h(
        'p',
        { class: 'notice' },
        `A magebackup run from the command line holds the store: ${state.holder.text}. Its progress is shown in its terminal.`,
      ),
    );
  }
  if (!job) {
    content.push(h('p', {}, 'Nothing has run from this page since the server started.'));
  } else {
    content.push(
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Operation'),
        h('dd', {}, `${job.command}${job.snapshot ? ` ${job.snapshot}` : ''}`),
        h('dt', {}, 'Started'),
        h('dd', {}, when(job.started)),
        h('dt', {}, 'Status'),
        h('dd', { id: 'job-status' }, badge(job.status)),
        job.ended ? h('dt', {}, 'Ended') : null,
        job.ended ? h('dd', {}, when(job.ended)) : null,
      ),
    );
    if (job.message)
      content.push(
        h(
          'p',
          { id: 'job-message', class: job.status === 'ok' ? 'notice' : 'error', role: 'status' },
          job.message,
        ),
      );
    for (const [part, p] of Object.entries(job.progress)) {
      const pct = p.totalBytes ? Math.min(100, Math.floor((p.bytes / p.totalBytes) * 100)) : null;
      const label = `${part} ${p.operation}: ${bytes(p.bytes)}${p.totalBytes ? ` / ${bytes(p.totalBytes)}` : ''}${p.table ? `, table ${p.table}` : ''}`;
      content.push(
        h(
          'div',
          {},
          h('p', { id: `pl-${part}` }, label),
          h('progress', {
            max: '100',
            value: job.status === 'running' ? (pct ?? undefined) : 100,
            'aria-labelledby': `pl-${part}`,
          }),
        ),
      );
    }
    content.push(h('h2', {}, 'Events'));
    content.push(
      h(
        'ol',
        { class: 'events' },
        job.events.map((e) => h('li', {}, describeEvent(e))),
      ),
    );
  }
  page('Progress', ...content);
}

function describeEvent(e) {
  switch (e.type) {
    case 'maintenance':
      return `maintenance: ${e.state}`;
    case 'part-start':
      return `${e.part} ${e.operation} started: ${e.file}`;
    case 'part-done':
      return `${e.part} ${e.operation} done: ${e.file} (${bytes(e.size)})`;
    case 'warning':
      return `warning ${e.code}: ${e.path ? `${e.path}: ` : ''}${e.message}`;
    case 'info':
      return e.message;
    default:
      return JSON.stringify(e);
  }
}

async function progressPage() {
  const st = await api('GET', '/api/status');
  state.job = st.job;
  state.holder = st.holder;
  renderBusy();
  renderProgress();
}

async function historyPage() {
  const r = await api('GET', '/api/history');
  const rows = r.entries.map((e) =>
    h(
      'tr',
      {},
      h('td', {}, when(e.time)),
      h('td', {}, e.origin),
      h('td', {}, e.command, e.id ? ` ${e.id}` : ''),
      h('td', {}, badge(e.result)),
      h('td', {}, e.message),
    ),
  );
  page(
    'History',
    r.skipped
      ? h('p', { class: 'error' }, `${r.skipped} damaged line(s) of the history log were skipped.`)
      : null,
    r.entries.length
      ? table(['Time', 'Origin', 'Command', 'Result', 'Message'], rows, 'Newest first')
      : h('p', {}, 'No history yet.'),
  );
}

async function retentionPage() {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const field = (name, label, hint, value) =>
    h(
      'label',
      { for: name },
      label,
      h('input', {
        type: 'text',
        id: name,
        name,
        value: value || '',
        inputmode: name === 'keepWithin' ? 'text' : 'numeric',
      }),
      h('span', { class: 'hint' }, hint),
    );
  const q = new URLSearchParams();
  for (const k of ['keepWithin', 'keepLast', 'keepDaily', 'keepWeekly'])
    if (params.get(k)) q.set(k, params.get(k));
  const out = h('div', { 'aria-live': 'assertive' });
  let preview;
  try {
    preview = await api('GET', `/api/retention?${q}`);
  } catch (err) {
    out.replaceChildren(errorBox(err));
  }
  const form = h(
    'form',
    {
      onsubmit: (ev) => {
        ev.preventDefault();
        const fd = new FormData(ev.target);
        const p = new URLSearchParams();
        for (const [k, v] of fd) if (String(v).trim()) p.set(k, String(v).trim());
        location.hash = `#/retention?${p}`;
      },
    },
    h(
      'fieldset',
      {},
      h('legend', {}, 'Policy (empty: keep 14 days)'),
      field('keepWithin', 'Keep within', 'e.g. 14d, 36h, 2w', params.get('keepWithin')),
      field('keepLast', 'Keep last', 'the n newest backups of each part', params.get('keepLast')),
      field(
        'keepDaily',
        'Keep daily',
        'the newest backup of each of the last n days',
        params.get('keepDaily'),
      ),
      field(
        'keepWeekly',
        'Keep weekly',
        'the newest backup of each of the last n weeks',
        params.get('keepWeekly'),
      ),
    ),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'secondary' }, 'Preview')),
  );
  const content = [out, form];
  if (preview) {
    const row = (d) =>
      h(
        'tr',
        {},
        h('td', {}, h('a', { href: `#/snapshot/${d.id}` }, d.id)),
        h('td', {}, badge(d.status)),
        h('td', { class: 'num' }, bytes(d.size)),
        h('td', {}, d.reasons.join(', ')),
      );
    content.push(h('h2', {}, `Policy: ${preview.description}`));
    content.push(h('h2', {}, `Would remove (${preview.remove.length})`));
    content.push(
      preview.remove.length
        ? table(['ID', 'Status', 'Size', 'Why'], preview.remove.map(row))
        : h('p', {}, 'Nothing.'),
    );
    content.push(h('h2', {}, `Would keep (${preview.keep.length})`));
    content.push(
      preview.keep.length
        ? table(['ID', 'Status', 'Size', 'Why'], preview.keep.map(row))
        : h('p', {}, 'Nothing.'),
    );
    const ack = h('input', { type: 'checkbox', id: 'ack' });
    const go = h(
      'button',
      { type: 'button', class: 'danger', disabled: true },
      `Prune: remove ${preview.remove.length} snapshot(s)`,
    );
    ack.addEventListener('change', () => (go.disabled = !ack.checked));
    go.addEventListener('click', async () => {
      go.disabled = true;
      const body = { confirm: true };
      for (const [k, v] of q) body[k] = k === 'keepWithin' ? v : Number(v);
      const err = await startJob('/api/prune', body);
      if (err) {
        out.replaceChildren(errorBox(err));
        go.disabled = false;
      }
    });
    content.push(
      h(
        'label',
        { class: 'check', for: 'ack' },
        ack,
        h('span', {}, 'I understand that these snapshots are deleted for good'),
      ),
      h('div', { class: 'actions' }, go),
    );
  }
  page('Retention', ...content);
}

async function maintenancePage() {
  const m = await api('GET', '/api/maintenance');
  const out = h('div', { 'aria-live': 'assertive' });
  const toggle = h(
    'button',
    {
      type: 'button',
      'aria-pressed': m.enabled ? 'true' : 'false',
      onclick: async () => {
        toggle.disabled = true;
        try {
          await api('POST', '/api/maintenance', { enabled: !m.enabled });
          await maintenancePage();
        } catch (err) {
          out.replaceChildren(errorBox(err));
          toggle.disabled = false;
        }
      },
    },
    m.enabled ? 'Turn maintenance mode off' : 'Turn maintenance mode on',
  );
  page(
    'Maintenance mode',
    h(
      'p',
      { id: 'maintenance-state' },
      `Maintenance mode is ${m.enabled ? 'ON: the shop shows its maintenance page' : 'off: the shop is online'}.`,
    ),
    h('p', {}, `Exempt IP addresses: ${m.exemptIps.length ? m.exemptIps.join(', ') : 'none'}`),
    out,
    h('div', { class: 'actions' }, toggle),
  );
}

// ---- router -------------------------------------------------------------------------------------------

function currentRoute() {
  return (location.hash || '#/').slice(2).split(/[/?]/)[0];
}

async function route() {
  if (!state.csrf) return;
  state.focusNext = true;
  const [name, arg] = (location.hash || '#/').slice(2).split('?')[0].split('/');
  try {
    switch (name) {
      case '':
        return await backupsPage();
      case 'snapshot':
        return await snapshotPage(arg);
      case 'restore':
        return await restorePage(arg);
      case 'create':
        return await createPage();
      case 'progress':
        return await progressPage();
      case 'history':
        return await historyPage();
      case 'retention':
        return await retentionPage();
      case 'maintenance':
        return await maintenancePage();
      default:
        page('Not found', h('p', {}, 'No such page. '), h('a', { href: '#/' }, 'Back to the backups'));
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    page('Error', errorBox(err));
  }
}

/** A `#token=…` address (what serve prints) logs in, then the token leaves the address bar and the history. */
async function loginFromAddress() {
  const m = /^#token=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (!m) return false;
  history.replaceState(null, '', `${location.pathname}#/`);
  try {
    await login(m[1]);
  } catch (err) {
    showLogin(err.message);
    return true;
  }
  await afterLogin();
  return true;
}

async function afterLogin() {
  const st = await api('GET', '/api/status').catch(() => null);
  if (st) {
    state.job = st.job;
    state.holder = st.holder;
    document.getElementById('store').textContent = `Store: ${st.root}`;
    renderBusy();
  }
  route();
}

async function start() {
  window.addEventListener('hashchange', async () => {
    if (!(await loginFromAddress())) route();
  });
  if (await loginFromAddress()) return;
  try {
    const s = await api('GET', '/api/session');
    state.csrf = s.csrf;
    startEvents();
  } catch {
    return; // showLogin was called
  }
  await afterLogin();
}

start();
