// The Exports panel on the gallery's admin page: asks the staff API for a
// CSV, a Lightroom list, a PDF contact sheet or a ZIP of the gallery, a
// folder or the finalised selection, then follows each export (progress,
// the link once it is ready, the reason when it failed, Cancel meanwhile).
// Exports are built by a worker; on the embedded default (eager Celery) the
// request itself builds it, so the answer to the POST may already be done.

const config = JSON.parse(document.getElementById('exports-data').textContent);
const panel = document.getElementById('exports-panel');
const scopeSelect = document.getElementById('export-scope');
const list = document.getElementById('exports-list');
const empty = document.getElementById('exports-empty');
const errorBox = document.getElementById('exports-error');
const announcer = document.getElementById('exports-status');

const ACTIVE = new Set(['queued', 'running']);
const POLL_FIRST_MS = 1000;
const POLL_MAX_MS = 8000;
const KIND = {
  csv: 'Selection CSV',
  lightroom: 'Lightroom list',
  contact_sheet: 'Contact sheet (PDF)',
  zip: 'ZIP',
};
const STATUS = {
  queued: 'Queued',
  running: 'Running',
  done: 'Ready',
  failed: 'Failed',
  cancelled: 'Cancelled',
  expired: 'Expired',
};

const exports = new Map();
let timer = null;
let delay = POLL_FIRST_MS;
let polling = false;

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, url, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRFToken'] = config.csrfToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'No connection to the server.');
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error || {};
    const fields = Object.values(error.fields || {}).flat();
    throw new ApiError(response.status, [error.message || `The server answered ${response.status}.`, ...fields].join(' '));
  }
  return data;
}

function sizeText(bytes) {
  if (bytes === null || bytes === undefined) return '';
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function dateText(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '';
}

function describe(row) {
  const scope =
    row.scope === 'folder'
      ? `folder “${config.folders[row.folder] || 'deleted folder'}”`
      : row.scope === 'selection'
        ? 'the selection'
        : 'the whole gallery';
  const size = row.kind === 'zip' ? (row.size === 'original' ? ', originals' : ', web size') : '';
  return `${KIND[row.kind] || row.kind} of ${scope}${size}`;
}

function announce(text) {
  announcer.textContent = text;
}

// --- drawing ------------------------------------------------------------------------------------

function statusCell(row) {
  const cell = document.createElement('td');
  cell.className = 'staff-export-status';
  const text = document.createElement('span');
  text.textContent =
    row.status === 'running' && row.progress ? `${STATUS.running} ${row.progress}%` : STATUS[row.status] || row.status;
  cell.append(text);
  if (ACTIVE.has(row.status)) {
    const bar = document.createElement('progress');
    bar.max = 100;
    if (row.status === 'running') bar.value = row.progress || 0;
    bar.setAttribute('aria-label', `Progress of the ${describe(row)}`);
    cell.append(bar);
  }
  if (row.status === 'failed' && row.failure_reason) {
    const reason = document.createElement('span');
    reason.className = 'staff-export-reason';
    reason.textContent = row.failure_reason;
    cell.append(reason);
  }
  return cell;
}

function actionsCell(row) {
  const cell = document.createElement('td');
  if (row.status === 'done' && row.download_url) {
    const link = document.createElement('a');
    link.href = row.download_url;
    link.setAttribute('download', row.filename || '');
    link.textContent = `Download ${row.filename || ''}`.trim();
    link.className = 'staff-export-download';
    cell.append(link);
    if (row.file_size !== null && row.file_size !== undefined) cell.append(` (${sizeText(row.file_size)})`);
    if (row.expires_at) {
      const until = document.createElement('span');
      until.className = 'staff-muted staff-export-until';
      until.textContent = `until ${dateText(row.expires_at)}`;
      cell.append(until);
    }
  }
  if (ACTIVE.has(row.status)) {
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.className = 'button staff-export-cancel';
    cancel.dataset.cancel = row.id;
    cancel.textContent = 'Cancel';
    cancel.setAttribute('aria-label', `Cancel the ${describe(row)}`);
    cell.append(cancel);
  }
  return cell;
}

function rowFor(row) {
  const tr = document.createElement('tr');
  tr.dataset.id = row.id;
  tr.dataset.status = row.status;
  const what = document.createElement('th');
  what.scope = 'row';
  what.textContent = describe(row);
  const when = document.createElement('td');
  when.textContent = dateText(row.created_at);
  tr.append(what, when, statusCell(row), actionsCell(row));
  return tr;
}

function render() {
  const rows = [...exports.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  empty.hidden = rows.length > 0;
  list.closest('table').hidden = rows.length === 0;
  const focused = document.activeElement?.closest('tr[data-id]')?.dataset.id;
  const existing = new Map([...list.children].map((tr) => [tr.dataset.id, tr]));
  const nodes = rows.map((row) => {
    const old = existing.get(row.id);
    if (old && old.dataset.status === row.status && row.status !== 'running') return old;
    if (old && old.dataset.status === row.status) {
      // Running: only the numbers move; keep the row (and a focused Cancel).
      old.querySelector('.staff-export-status span').textContent = row.progress
        ? `${STATUS.running} ${row.progress}%`
        : STATUS.running;
      const bar = old.querySelector('progress');
      if (bar) bar.value = row.progress || 0;
      return old;
    }
    return rowFor(row);
  });
  nodes.forEach((node, index) => {
    if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
  });
  while (list.children.length > nodes.length) list.lastElementChild.remove();
  if (focused && !document.activeElement?.closest('tr[data-id]')) {
    list.querySelector(`tr[data-id="${focused}"]`)?.querySelector('a, button')?.focus();
  }
}

// --- following -------------------------------------------------------------------------------------

const hasActive = () => [...exports.values()].some((row) => ACTIVE.has(row.status));

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(poll, ms);
}

function changed(before, row) {
  if (before.status === row.status) return;
  if (row.status === 'done') announce(`The ${describe(row)} is ready to download.`);
  if (row.status === 'failed') announce(`The ${describe(row)} failed: ${row.failure_reason || 'no reason given'}.`);
}

async function poll() {
  if (polling || document.visibilityState === 'hidden') return;
  const active = [...exports.values()].filter((row) => ACTIVE.has(row.status));
  if (!active.length) return;
  polling = true;
  let moved = false;
  for (const before of active) {
    try {
      const row = await api('GET', `${config.exports}${before.id}/`);
      moved = moved || row.status !== before.status || row.progress !== before.progress;
      exports.set(row.id, row);
      changed(before, row);
    } catch (error) {
      if (error.status === 404) exports.delete(before.id);
    }
  }
  polling = false;
  render();
  if (!hasActive()) return;
  delay = moved ? POLL_FIRST_MS : Math.min(delay * 1.5, POLL_MAX_MS);
  schedule(delay);
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && hasActive()) schedule(0);
});

// --- asking ----------------------------------------------------------------------------------------------

async function requestExport(button) {
  const [scope, folder] = scopeSelect.value.split(':');
  const body = { kind: button.dataset.exportKind, scope, folder: folder || null };
  if (body.kind === 'zip') body.size = button.dataset.exportSize || 'web';
  errorBox.hidden = true;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    const row = await api('POST', config.exports, body);
    const known = exports.has(row.id);
    exports.set(row.id, row);
    render();
    if (row.status === 'done') announce(`The ${describe(row)} is ready to download.`);
    else if (row.status === 'failed') announce(`The ${describe(row)} failed: ${row.failure_reason}`);
    else announce(known ? `The same ${describe(row)} is already on its way.` : `The ${describe(row)} is being prepared.`);
    if (ACTIVE.has(row.status)) {
      delay = POLL_FIRST_MS;
      schedule(POLL_FIRST_MS);
    }
  } catch (error) {
    errorBox.textContent = `Not started: ${error.message}`;
    errorBox.hidden = false;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

async function cancel(id, button) {
  button.disabled = true;
  try {
    const row = await api('POST', `${config.exports}${id}/cancel/`);
    exports.set(id, row);
    announce(`The ${describe(row)} was cancelled.`);
  } catch (error) {
    errorBox.textContent = `Not cancelled: ${error.message}`;
    errorBox.hidden = false;
    button.disabled = false;
  }
  render();
}

panel.addEventListener('click', (event) => {
  const ask = event.target.closest('[data-export-kind]');
  if (ask) requestExport(ask);
  const stop = event.target.closest('[data-cancel]');
  if (stop) cancel(stop.dataset.cancel, stop);
});

// Exports asked for earlier (by anyone on the team) are listed, and running ones followed.
async function load() {
  try {
    const page = await api('GET', `${config.exports}?page_size=20`);
    for (const row of Array.isArray(page) ? page : page?.results || []) exports.set(row.id, row);
  } catch (error) {
    errorBox.textContent = `The exports could not be loaded: ${error.message}`;
    errorBox.hidden = false;
  }
  render();
  if (hasActive()) schedule(POLL_FIRST_MS);
}

load();
