// The staff uploader (galleries/staff_pages.py renders the shell).
//
// Uppy's Dashboard takes the files (drop, browse, whole folders) and sends
// each one straight to storage with a presigned POST from the batch presign
// API: one request asks for the targets of many files, then every file is
// POSTed to its own target, a few at a time. Uppy 6's AwsS3 plugin no longer
// speaks presigned POST (it signs PUTs and multipart uploads only), so the
// POST form goes through XHRUpload, which is what AwsS3 used to do for it:
// the target's fields as form fields, the file last.
//
// Each upload that arrives is confirmed with the batch's `complete` call
// (storage is checked, derivatives are queued), then the batches are polled
// until every photo is ready or failed, with the reason.

import { Dashboard, Uppy, XHRUpload } from '../vendor/uppy-6.0.1/uppy.min.mjs';

const config = JSON.parse(document.getElementById('upload-data').textContent);

// A few at a time: enough to fill a studio's uplink, few enough that a slow
// line still sees steady per-file progress.
const PARALLEL = 4;
const POLL_MS = 1500;
// A target is asked for again when it expires within this margin.
const TARGET_MARGIN_MS = 60_000;
// complete takes at most this many photos per call (the API's limit).
const COMPLETE_MAX = 1000;
// Files are hashed (duplicates are refused by the server, and what arrives is
// checked against the hash) up to this size; larger ones go unhashed rather
// than held whole in memory.
const HASH_MAX_BYTES = 300 * 1024 * 1024;

const TYPES_BY_EXTENSION = {
  jpg: 'image/jpeg', jpeg: 'image/jpeg', jpe: 'image/jpeg', png: 'image/png', webp: 'image/webp',
  tif: 'image/tiff', tiff: 'image/tiff', heic: 'image/heic', heif: 'image/heif', hif: 'image/heif',
};

const files = new Map(); // Uppy file id -> {batch, asset, target, phase}
const fileByAsset = new Map(); // asset id -> Uppy file id
const batches = new Map(); // batch id -> last progress {counts, failed}
const toComplete = new Map(); // batch id -> Set of asset ids uploaded, not yet confirmed
const failures = new Map(); // asset id -> {filename, reason}
const stale = new Set(); // batches confirmed since their progress was last read
let completing = null;
let pollTimer = null;

// --- the server -------------------------------------------------------------------------------

async function api(url, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRFToken'] = config.csrfToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(url, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error(data?.error?.message || `The server answered ${response.status}.`);
  }
  return data;
}

const batchUrl = (batch) => `${config.presign}${batch}/`;

// --- targets ----------------------------------------------------------------------------------

function contentType(file) {
  const extension = (file.name.split('.').pop() || '').toLowerCase();
  return file.type || TYPES_BY_EXTENSION[extension] || 'application/octet-stream';
}

async function sha256(file) {
  if (!globalThis.crypto?.subtle || file.size > HASH_MAX_BYTES) return '';
  const digest = await crypto.subtle.digest('SHA-256', await file.data.arrayBuffer());
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

async function mapLimit(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// The answer names files by their name only, so a request holds each name
// once: two cameras' IMG_0001.jpg from different folders go in two requests.
function requestGroups(list) {
  const groups = [];
  for (const file of list) {
    const name = file.name.slice(0, 255);
    let group = groups.find((g) => g.files.length < config.maxFilesPerBatch && !g.byName.has(name));
    if (!group) {
      group = { files: [], byName: new Map() };
      groups.push(group);
    }
    group.files.push(file);
    group.byName.set(name, file);
  }
  return groups;
}

function hasFreshTarget(id) {
  const entry = files.get(id);
  return entry?.phase === 'target' && Date.parse(entry.target.expires_at) - Date.now() > TARGET_MARGIN_MS;
}

function refuse(file, reason) {
  uppy.emit('upload-error', uppy.getFile(file.id), new Error(reason));
}

async function assignTargets(fileIDs) {
  const wanted = fileIDs
    .map((id) => uppy.getFile(id))
    .filter((file) => file && !file.error && !file.progress.uploadComplete && !hasFreshTarget(file.id));
  if (!wanted.length) return;
  for (const file of wanted) {
    uppy.emit('preprocess-progress', file, { mode: 'indeterminate', message: 'Preparing…' });
  }
  const hashes = await mapLimit(wanted, 2, sha256);
  const hashOf = new Map(wanted.map((file, index) => [file.id, hashes[index]]));
  for (const group of requestGroups(wanted)) {
    const body = {
      files: group.files.map((file) => ({
        filename: file.name,
        size: file.size,
        content_type: contentType(file),
        sha256: hashOf.get(file.id),
      })),
    };
    let answer;
    try {
      answer = await api(config.presign, { method: 'POST', body });
    } catch (error) {
      group.files.forEach((file) => refuse(file, error.message));
      continue;
    }
    for (const target of answer.targets) {
      const file = group.byName.get(target.filename);
      if (!file) continue;
      files.set(file.id, { batch: answer.batch, asset: target.asset, target, phase: 'target' });
      fileByAsset.set(target.asset, file.id);
      uppy.setFileMeta(file.id, target.fields);
      uppy.setFileState(file.id, {
        xhrUpload: { endpoint: target.url, method: 'POST', allowedMetaFields: Object.keys(target.fields) },
      });
    }
    for (const rejected of answer.rejected) {
      const file = group.byName.get(rejected.filename.slice(0, 255));
      if (file) refuse(file, rejected.reason);
    }
  }
  for (const file of wanted) {
    const current = uppy.getFile(file.id);
    if (current) uppy.emit('preprocess-complete', current);
  }
}

// --- what storage answers ---------------------------------------------------------------------

// Our stand-in answers in the API's JSON error shape, S3 in XML.
function storageError(xhr) {
  let message = '';
  try {
    message = JSON.parse(xhr.responseText)?.error?.message || '';
  } catch {
    const xml = new DOMParser().parseFromString(xhr.responseText || '', 'application/xml');
    message = xml.querySelector('Message')?.textContent || '';
  }
  return message || `Storage answered ${xhr.status}.`;
}

// --- confirming uploads and following the derivatives -----------------------------------------

function queueComplete(batch, asset) {
  if (!toComplete.has(batch)) toComplete.set(batch, new Set());
  toComplete.get(batch).add(asset);
  if (!batches.has(batch)) batches.set(batch, null);
  render();
  if (!completing) {
    completing = drainCompletes().finally(() => {
      completing = null;
      render();
    });
  }
}

function markFailed(asset, filename, reason) {
  failures.set(asset, { filename, reason });
  const entry = files.get(fileByAsset.get(asset));
  if (entry) entry.phase = 'failed';
}

// One call at a time, each with every upload that arrived meanwhile: complete
// checks each object in storage, and on the embedded default it also makes the
// derivatives before it answers.
async function drainCompletes() {
  let setbacks = 0;
  while (toComplete.size) {
    const [batch, waiting] = toComplete.entries().next().value;
    const assets = [...waiting].slice(0, COMPLETE_MAX);
    assets.forEach((asset) => waiting.delete(asset));
    if (!waiting.size) toComplete.delete(batch);
    try {
      const result = await api(`${batchUrl(batch)}complete/`, { method: 'POST', body: { assets } });
      setbacks = 0;
      stale.add(batch);
      for (const asset of result.processing) {
        const entry = files.get(fileByAsset.get(asset));
        if (entry) entry.phase = 'processing';
      }
      for (const { asset, filename, reason } of result.failed) markFailed(asset, filename, reason);
      for (const asset of result.missing) {
        const file = uppy.getFile(fileByAsset.get(asset));
        markFailed(asset, file?.name || '', 'The file did not arrive in storage: remove it and add it again.');
      }
    } catch (error) {
      // The uploads are safe in storage; ask again after a pause.
      assets.forEach((asset) => queueLater(batch, asset));
      setbacks += 1;
      showNotice(`Could not confirm uploads (${error.message}) Trying again…`);
      await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 1000 * 2 ** setbacks)));
    }
    schedulePoll(0);
  }
}

function queueLater(batch, asset) {
  if (!toComplete.has(batch)) toComplete.set(batch, new Set());
  toComplete.get(batch).add(asset);
}

function schedulePoll(delay = POLL_MS) {
  if (pollTimer !== null) return;
  pollTimer = setTimeout(async () => {
    pollTimer = null;
    await poll();
  }, delay);
}

async function poll() {
  const following = [...batches.entries()].filter(
    ([batch, progress]) => stale.has(batch) || progress === null || progress.counts.processing > 0,
  );
  for (const [batch] of following) {
    try {
      const progress = await api(batchUrl(batch));
      batches.set(batch, progress);
      stale.delete(batch);
      for (const { asset, filename, reason } of progress.failed) markFailed(asset, filename, reason);
    } catch (error) {
      showNotice(`Could not check processing (${error.message}) Trying again…`);
    }
  }
  render();
  const stillProcessing = [...batches.values()].some((p) => p === null || p.counts.processing > 0);
  if (stillProcessing || stale.size || completing) schedulePoll();
}

// --- the page ---------------------------------------------------------------------------------

const section = document.getElementById('processing');
const bar = document.getElementById('processing-bar');
const status = document.getElementById('processing-status');
const failedBox = document.getElementById('processing-failed');
const failedList = document.getElementById('processing-failed-list');
let notice = '';

function showNotice(text) {
  notice = text;
  render();
}

function totals() {
  const sum = { ready: 0, processing: 0, failed: 0 };
  for (const progress of batches.values()) {
    if (!progress) continue;
    sum.ready += progress.counts.ready;
    sum.processing += progress.counts.processing;
    sum.failed += progress.counts.failed;
  }
  let confirming = 0;
  for (const waiting of toComplete.values()) confirming += waiting.size;
  return { ...sum, confirming };
}

function uploadsRunning() {
  return Object.keys(uppy.getState().currentUploads || {}).length > 0;
}

function render() {
  if (!batches.size) return;
  section.hidden = false;
  const t = totals();
  const arrived = t.ready + t.processing + t.failed + t.confirming;
  bar.max = Math.max(arrived, 1);
  bar.value = t.ready + t.failed;
  const parts = [`${t.ready} of ${arrived} photos ready`];
  if (t.processing || t.confirming) parts.push(`${t.processing + t.confirming} processing`);
  if (t.failed) parts.push(`${t.failed} failed`);
  const finished = !t.processing && !t.confirming && !stale.size && !completing && !uploadsRunning();
  let text = parts.join(' · ');
  if (finished) {
    text = t.failed
      ? `Done: ${t.ready} photos ready, ${t.failed} could not be used (reasons below).`
      : `Done: all ${t.ready} photos are ready.`;
    notice = '';
  }
  status.textContent = notice ? `${text} ${notice}` : text;
  section.dataset.state = finished ? 'done' : 'working';
  renderFailures();
}

function renderFailures() {
  failedBox.hidden = failures.size === 0;
  if (failedList.childElementCount === failures.size) return;
  failedList.replaceChildren(
    ...[...failures.values()].map(({ filename, reason }) => {
      const item = document.createElement('li');
      const name = document.createElement('strong');
      name.textContent = filename;
      item.append(name, `: ${reason}`);
      return item;
    }),
  );
}

// --- Uppy -------------------------------------------------------------------------------------

const maxMiB = Math.round(config.maxFileBytes / (1024 * 1024));
const uppy = new Uppy({
  id: 'gallery-upload',
  autoProceed: false,
  restrictions: { allowedFileTypes: config.accept, maxFileSize: config.maxFileBytes },
});

uppy.use(Dashboard, {
  inline: true,
  target: '#uploader',
  width: '100%',
  height: 460,
  fileManagerSelectionType: 'both',
  showProgressDetails: true,
  proudlyDisplayPoweredByUppy: false,
  note: `JPEG, PNG, WebP, TIFF or HEIC photos, up to ${maxMiB} MiB each. Drop a whole folder if you like.`,
});

uppy.use(XHRUpload, {
  // Each file's own target (set in assignTargets) overrides this.
  endpoint: () => {
    throw new Error('No upload target for this file.');
  },
  method: 'POST',
  formData: true,
  fieldName: 'file',
  allowedMetaFields: [],
  limit: PARALLEL,
  timeout: 60_000,
  // Refusals (expired target, wrong size) do not get better by repeating.
  shouldRetry: (xhr) => xhr.status === 0 || xhr.status === 429 || xhr.status >= 500,
  onAfterResponse: (xhr) => {
    if (xhr.status >= 400) throw new Error(storageError(xhr));
  },
  // S3 and our stand-in answer 204 with no body.
  getResponseData: () => ({}),
});

uppy.addPreProcessor(assignTargets);

// Uppy's file list scrolls but cannot take focus, so a keyboard cannot
// scroll it (axe: scrollable-region-focusable). Preact keeps attributes it
// does not manage, but the list is re-created as files come and go.
const uploader = document.getElementById('uploader');
new MutationObserver(() => {
  for (const list of uploader.querySelectorAll('.uppy-Dashboard-files:not([tabindex])')) {
    list.tabIndex = 0;
    if (list.getAttribute('role') === 'list') list.setAttribute('aria-label', 'Files to upload');
  }
}).observe(uploader, { childList: true, subtree: true });

uppy.on('upload-success', (file) => {
  const entry = files.get(file.id);
  if (!entry) return;
  entry.phase = 'uploaded';
  queueComplete(entry.batch, entry.asset);
});
uppy.on('complete', render);

// Leaving while files are on their way loses them; once confirmed, the
// server finishes the processing on its own.
window.addEventListener('beforeunload', (event) => {
  if (uploadsRunning() || toComplete.size || completing) {
    event.preventDefault();
    event.returnValue = '';
  }
});

// For the browser tests and the curious: the Uppy instance.
window.galleryUploader = uppy;
