// The client gallery page. State lives here; the modules next to it do one
// thing each: api (fetch + write queue), grid (windowed list), rating,
// selection, folders (sidebar + drop targets), viewer (PhotoSwipe), toasts,
// downloads (the Download button: ZIPs prepared by the server), findme (the
// "Find me" selfie search: a place of its own, #find-me, while it is on).

import Sortable from "../vendor/sortablejs-1.15.7/sortable.complete.esm.js";
import { ApiError, request, WriteQueue } from "./api.js";
import { Downloads } from "./downloads.js";
import { FindMe } from "./findme.js";
import { renderFolders } from "./folders.js";
import { PhotoGrid } from "./grid.js";
import { bindKeyboard } from "./keyboard.js";
import { bindRatings, ratingControl, setRating } from "./rating.js";
import { Selection } from "./selection.js";
import { dismissToast, setToastRegion, toast } from "./toasts.js";

const PAGE_SIZE = 100;
const VIEWS = ["grid", "list", "carousel"];
const config = JSON.parse(document.getElementById("portal-data").textContent);
const $ = (role) => document.querySelector(`[data-role="${role}"]`);
const root = document.querySelector(".pg");
const photos = $("photos");
const viewKey = `portal-view:${config.gallery}`;

const state = {
  gallery: null,
  folders: [],
  place: { kind: "all", folder: null },
  view: VIEWS.includes(localStorage.getItem(viewKey)) ? localStorage.getItem(viewKey) : "grid",
  items: [],
  next: null,
  loading: false,
  generation: 0,
  active: 0,
  viewer: null,
};

setToastRegion($("toasts"));

const downloads = new Downloads({
  // The exports endpoint sits under the portal gallery's own URL.
  url: config.exports || `${config.api}exports/`,
  root: document,
  folderName: (id) => folderName(id),
});

const findMe = new FindMe({
  url: `${config.api}find-me/`,
  root: document,
  onFound: (result) => {
    toast(`Found you in ${plural(result.matches.length, "photo")}.`, { kind: "success" });
    // A history entry like every place, so "All photos" and Back leave it;
    // pushed (no hashchange) so the bar is there to take the focus now.
    if (location.hash !== "#find-me") history.pushState(null, "", "#find-me");
    showPlace(placeFromHash());
    // The bar at the top of the screen, the photos right under it (on a phone the header is tall).
    $("findme-summary").focus({ preventScroll: true });
    $("findme-bar").scrollIntoView({ block: "start" });
  },
  onDisabled: () => {
    if (state.place.kind === "findme") location.hash = "all";
  },
});

const queue = new WriteQueue(`portal-writes:${config.gallery}`, {
  onStall(count) {
    toast(`Not saved yet: ${count} change${count > 1 ? "s" : ""} waiting for the connection.`, {
      kind: "error",
      id: "offline",
      timeout: 0,
      action: { label: "Retry now", run: () => queue.retry() },
    });
  },
  onDrain() {
    if (document.querySelector('[data-toast-id="offline"]')) {
      dismissToast("offline");
      toast("All changes saved.", { kind: "success" });
    }
    refreshCounts();
  },
});

const selection = new Selection((indexes) => {
  if (indexes === null) grid.update(grid.nodes.keys());
  else grid.update(indexes);
  renderSelectionBar();
});

const grid = new PhotoGrid({
  list: photos,
  sentinel: $("sentinel"),
  renderItem: renderTile,
  patchItem: patchTile,
  onNeedMore: () => loadMore(),
});

// --- helpers -----------------------------------------------------------------------------------

const plural = (n, word) => `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
const locked = () => state.gallery?.selection === "finalized";
const currentFolder = () => state.folders.find((f) => f.id === state.place.folder) || null;
const folderName = (id) => state.folders.find((f) => f.id === id)?.name;
const indexOfId = (id) => state.items.findIndex((item) => item.id === id);

function placeTotal() {
  const counts = state.gallery?.counts;
  if (!counts) return state.items.length;
  const total = {
    all: counts.photos,
    rated: counts.rated,
    trash: counts.trashed,
    folder: currentFolder()?.asset_count ?? 0,
    findme: findMe.count,
  }[state.place.kind];
  return state.next ? Math.max(total, state.items.length) : state.items.length;
}

function downloadUrl(item) {
  const gallery = state.gallery;
  if (!gallery?.can_download || item.trashed) return null;
  const url = gallery.download_permission === "originals" ? item.urls.original : item.urls.large;
  return url ? `${url}?download=1` : null;
}

function srcset(item) {
  return ["thumb", "medium"]
    .filter((v) => item.urls[v] && item.sizes?.[v]?.width)
    .map((v) => `${item.urls[v]} ${item.sizes[v].width}w`)
    .join(", ");
}

// --- tiles -------------------------------------------------------------------------------------

function renderTile(item, index) {
  const li = document.createElement("li");
  li.className = "tile";
  li.dataset.index = String(index);
  li.dataset.id = item.id;
  li.setAttribute("aria-posinset", String(index + 1));
  li.setAttribute("aria-setsize", String(placeTotal()));

  const button = document.createElement("button");
  button.type = "button";
  button.className = "tile-photo";
  button.tabIndex = index === state.active ? 0 : -1;
  const img = document.createElement("img");
  img.loading = "lazy";
  img.decoding = "async";
  img.src = item.urls.thumb || item.urls.medium || "";
  const set = srcset(item);
  if (set) {
    img.srcset = set;
    img.sizes = state.view === "list" ? "64px" : "(max-width: 600px) 50vw, 260px";
  }
  const size = item.sizes?.thumb;
  if (size) {
    img.width = size.width;
    img.height = size.height;
  }
  img.alt = `Photo ${index + 1}: ${item.filename}`;
  button.append(img);

  const check = document.createElement("span");
  check.className = "tile-check";
  check.setAttribute("aria-hidden", "true");

  const meta = document.createElement("div");
  meta.className = "tile-meta";
  const name = document.createElement("span");
  name.className = "tile-name";
  name.textContent = item.filename;
  const folders = document.createElement("span");
  folders.className = "tile-folders";
  const stars = ratingControl(item.filename, item.stars, { disabled: locked() || item.trashed });
  const actions = document.createElement("span");
  actions.className = "tile-actions";
  const open = document.createElement("button");
  open.type = "button";
  open.className = "tile-open icon-button";
  open.tabIndex = -1;
  open.setAttribute("aria-label", `View ${item.filename} full screen`);
  open.textContent = "⤢";
  actions.append(open);
  if (state.place.kind === "findme") actions.append(notMeButton(item));
  const url = downloadUrl(item);
  if (url) {
    const link = document.createElement("a");
    link.className = "tile-download icon-button";
    link.href = url;
    link.tabIndex = -1;
    link.setAttribute("download", "");
    link.setAttribute("aria-label", `Download ${item.filename}`);
    link.textContent = "↓";
    actions.append(link);
  }
  meta.append(name, stars, folders, actions);
  li.append(button, check, meta);
  patchTile(li, item, index);
  return li;
}

function notMeButton(item) {
  // A wrong match leaves this session's results; "likely" ones say so.
  const notMe = document.createElement("button");
  notMe.type = "button";
  notMe.className = "tile-notme button button-small";
  notMe.setAttribute("aria-label", `Not me: remove ${item.filename} from your photos`);
  notMe.textContent = findMe.confidence.get(item.id) === "likely" ? "Maybe · Not me" : "Not me";
  return notMe;
}

function patchTile(li, item, index) {
  const selected = selection.has(item.id);
  li.classList.toggle("is-selected", selected);
  const button = li.querySelector(".tile-photo");
  button.setAttribute("aria-pressed", String(selected));
  button.tabIndex = index === state.active ? 0 : -1;
  setRating(li.querySelector(".stars"), item.stars, { disabled: locked() || item.trashed });
  const names = item.folders.map(folderName).filter(Boolean);
  const chips = li.querySelector(".tile-folders");
  chips.replaceChildren(
    ...names.map((n) => {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.textContent = n;
      return chip;
    }),
  );
  li.classList.toggle("in-folder", names.length > 0);
}

function focusIndex(index, { extend = false } = {}) {
  if (!state.items.length) return;
  const target = Math.max(0, Math.min(state.items.length - 1, index));
  const previous = state.active;
  state.active = target;
  grid.update([previous, target]);
  if (extend) {
    if (selection.anchor === null) selection.add(state.items, previous);
    selection.range(state.items, target);
  }
  const node = grid.reveal(target);
  node?.querySelector(".tile-photo")?.focus();
  if (target >= state.items.length - PAGE_SIZE / 2) loadMore();
}

// --- loading -----------------------------------------------------------------------------------

function assetsUrl() {
  const params = new URLSearchParams({ page_size: String(PAGE_SIZE) });
  if (state.place.kind === "rated") params.set("min_stars", "1");
  if (state.place.kind === "trash") params.set("trashed", "true");
  if (state.place.kind === "folder") params.set("folder", state.place.folder);
  if (state.place.kind === "findme") params.set("find_me", findMe.key);
  return `${config.assets}?${params}`;
}

function setLoading(loading) {
  state.loading = loading;
  photos.setAttribute("aria-busy", String(loading));
  root.classList.toggle("is-loading-more", loading && state.items.length > 0);
}

async function loadMore() {
  if (state.loading || !state.next) return;
  const generation = state.generation;
  setLoading(true);
  $("error").hidden = true;
  try {
    const page = await request("GET", state.next);
    if (generation !== state.generation) return;
    state.items.push(...page.results);
    state.next = page.next;
    root.dataset.state = "ready";
    setLoading(false);
    renderEmpty();
    grid.render();
    state.viewer?.itemsChanged();
    if (state.next && grid.nearEnd()) queueMicrotask(loadMore);
  } catch (error) {
    if (generation !== state.generation) return;
    setLoading(false);
    root.dataset.state = state.items.length ? "ready" : "error";
    $("error").hidden = false;
    $("error-text").textContent =
      error instanceof ApiError && error.network
        ? "The connection dropped while loading photos. Nothing you did is lost."
        : `The photos could not be loaded: ${error.message}`;
  }
}

function showPlace(place) {
  state.place = place;
  state.generation += 1;
  state.items = [];
  state.active = 0;
  state.next = assetsUrl();
  state.loading = false;
  selection.ids.clear();
  selection.anchor = null;
  root.dataset.state = "loading";
  root.dataset.place = place.kind;
  $("empty").hidden = true;
  grid.setItems(state.items);
  renderPlaceChrome();
  renderSelectionBar();
  loadMore();
}

function placeFromHash() {
  const hash = location.hash.slice(1);
  if (hash === "rated" || hash === "trash") return { kind: hash, folder: null };
  if (hash.startsWith("folder-")) return { kind: "folder", folder: hash.slice(7) };
  // The search key lives in memory only: after a reload there is none.
  if (hash === "find-me" && findMe.key) return { kind: "findme", folder: null };
  return { kind: "all", folder: null };
}

function renderPlaceChrome() {
  const folder = currentFolder();
  const titles = { all: "All photos", rated: "Rated", trash: "Trash", findme: "Photos of you" };
  $("view-title").textContent = state.place.kind === "folder" ? folder?.name || "Folder" : titles[state.place.kind];
  for (const link of document.querySelectorAll(".pg-place")) {
    const here =
      link.dataset.place === state.place.kind && (link.dataset.place !== "folder" || link.dataset.folder === state.place.folder);
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  downloads.setFolder(state.place.kind === "folder" ? folder : null);
  if (state.place.kind === "findme") findMe.renderBar(true);
  else if (findMe.key) findMe.clear(); // another place: the search is over
  const editable = Boolean(folder?.editable) && !locked();
  $("folder-actions").hidden = !(state.place.kind === "folder" && editable);
  root.classList.toggle("is-readonly-folder", state.place.kind === "folder" && !folder?.editable);
  gridSortable.option("sort", state.place.kind === "folder" && editable);
  // Nothing to drag once the selection is locked, nor out of the trash.
  gridSortable.option("disabled", locked() || state.place.kind === "trash");
}

function renderEmpty() {
  const empty = state.items.length === 0 && !state.next;
  $("empty").hidden = !empty;
  if (!empty) return;
  const folder = currentFolder();
  const texts = {
    all: ["No photos yet", "The studio has not added photos to this gallery yet. Check back soon."],
    rated: ["Nothing rated yet", "Rate photos with the stars (or the keys 1 to 5) and they gather here."],
    trash: ["The trash is empty", "Photos you move to the trash wait here; you can restore them at any time."],
    findme: ["No photos of you left", "Clear to see all the photos again, or try Find me with another photo."],
    folder: [
      "This folder is empty",
      folder?.editable
        ? "Drag photos here, or select some and choose this folder in “Add to folder”."
        : "The studio has not put photos in this folder yet.",
    ],
  }[state.place.kind];
  $("empty-title").textContent = texts[0];
  $("empty-text").textContent = texts[1];
}

// --- the gallery header, counts, folders ------------------------------------------------------------

function renderGallery() {
  const gallery = state.gallery;
  const counts = gallery.counts || {};
  for (const el of document.querySelectorAll("[data-count]")) {
    const value = counts[el.dataset.count];
    if (value === undefined) continue;
    el.textContent =
      el.dataset.count === "selected" && gallery.selection_limit
        ? `${value.toLocaleString()} of ${gallery.selection_limit.toLocaleString()}`
        : value.toLocaleString();
  }
  const selectedEl = document.querySelector('dd[data-count="selected"]');
  selectedEl?.classList.toggle("is-over", Boolean(gallery.selection_limit && counts.selected > gallery.selection_limit));
  const cover = $("cover");
  if (gallery.cover && !cover.querySelector("img")) {
    const img = document.createElement("img");
    img.src = gallery.cover;
    img.alt = "";
    cover.append(img);
    root.classList.add("has-cover");
  }
  const finalise = document.querySelector('[data-action="finalise"]');
  const isLocked = locked();
  document.body.classList.toggle("is-locked", isLocked);
  finalise.hidden = isLocked;
  finalise.disabled = !counts.selected;
  finalise.textContent = gallery.selection_limit
    ? `Finalise selection (${counts.selected ?? 0} of ${gallery.selection_limit})`
    : `Finalise selection (${counts.selected ?? 0})`;
  const note = $("locked-note");
  note.hidden = !isLocked;
  if (isLocked) {
    const when = gallery.finalized_at
      ? new Date(gallery.finalized_at).toLocaleDateString(undefined, { day: "numeric", month: "long", year: "numeric" })
      : "";
    note.textContent = `Selection finalised${when ? ` on ${when}` : ""}. The studio has your choice; ask them to reopen it if you need changes.`;
  }
  $("new-folder").hidden = isLocked;
  downloads.setGallery(gallery);
}

let countsTimer = null;
function refreshCounts() {
  clearTimeout(countsTimer);
  countsTimer = setTimeout(async () => {
    try {
      await Promise.all([loadGallery(), loadFolders()]);
    } catch {
      // The header is a summary; the next write or focus refreshes it.
    }
  }, 300);
}

async function loadGallery() {
  const wasLocked = locked();
  const first = state.gallery === null;
  state.gallery = await request("GET", config.api);
  renderGallery();
  // Tiles drawn before the header arrived lack what it decides (downloads, locks).
  if (first) grid.refresh();
  if (wasLocked !== locked()) {
    if (!locked()) toast("The studio reopened your selection: you can change it again.", { kind: "success" });
    grid.update(grid.nodes.keys());
    renderPlaceChrome();
    renderFoldersNow();
  }
}

async function loadFolders() {
  const page = await request("GET", `${config.folders}?page_size=200`);
  state.folders = page.results;
  renderFoldersNow();
}

function renderFoldersNow() {
  renderFolders($("folders"), state.folders, {
    current: state.place.kind === "folder" ? state.place.folder : null,
    locked: locked(),
    onDrop: dropOnFolder,
  });
  const select = $("bulk-folder");
  const options = state.folders
    .filter((f) => f.editable)
    .map((f) => {
      const option = document.createElement("option");
      option.value = f.id;
      option.textContent = f.name;
      return option;
    });
  const blank = document.createElement("option");
  blank.value = "";
  blank.textContent = options.length ? "Add to folder…" : "No folders yet";
  select.replaceChildren(blank, ...options);
  renderPlaceChrome();
  grid.update(grid.nodes.keys());
}

// --- writes (optimistic, queued) ----------------------------------------------------------------------

function refused(error, what) {
  if (error.code === "SELECTION_FINALIZED") refreshCounts();
  toast(`${what} ${error.message}`, { kind: "error" });
}

function targetIds() {
  if (selection.size) return [...selection.ids];
  const item = state.items[state.active];
  return item ? [item.id] : [];
}

function rate(ids, stars) {
  if (locked() || !ids.length) return;
  const before = new Map();
  const touched = [];
  for (const id of ids) {
    const index = indexOfId(id);
    if (index < 0) continue;
    before.set(id, state.items[index].stars);
    state.items[index].stars = stars;
    touched.push(index);
  }
  grid.update(touched);
  const rollback = () => {
    const indexes = [];
    for (const [id, value] of before) {
      const index = indexOfId(id);
      if (index >= 0) {
        state.items[index].stars = value;
        indexes.push(index);
      }
    }
    grid.update(indexes);
    state.viewer?.refresh();
  };
  const single = ids.length === 1;
  queue.push({
    label: "rating",
    method: single ? (stars ? "PUT" : "DELETE") : "POST",
    url: single ? `${config.assets}${ids[0]}/rating/` : `${config.assets}ratings/`,
    body: single ? (stars ? { stars } : undefined) : { ratings: ids.map((asset) => ({ asset, stars })) },
    onDone: refreshCounts,
    onFail: (error) => {
      rollback();
      refused(error, "The rating was not saved.");
    },
  });
  if (!single) toast(stars ? `Rated ${plural(ids.length, "photo")} ${stars}★.` : `Cleared ${plural(ids.length, "rating")}.`);
}

function removeFromList(ids, message, undo) {
  const wanted = new Set(ids);
  const removed = [];
  state.items = state.items.filter((item, index) => {
    if (wanted.has(item.id)) {
      removed.push({ item, index });
      return false;
    }
    return true;
  });
  grid.setItems(state.items);
  selection.keepOnly(state.items);
  state.active = Math.min(state.active, Math.max(0, state.items.length - 1));
  renderEmpty();
  if (message) toast(message, { kind: "success", action: undo });
  return () => {
    for (const { item, index } of removed) state.items.splice(Math.min(index, state.items.length), 0, item);
    grid.setItems(state.items);
    renderEmpty();
  };
}

function trash(ids, { restore = false } = {}) {
  if (locked() || !ids.length) return;
  const inTrash = state.place.kind === "trash";
  const leaves = restore === inTrash; // the photos leave the list we are looking at
  const n = plural(ids.length, "photo");
  const message = restore ? `Restored ${n}.` : `Moved ${n} to the trash.`;
  const undo = { label: "Undo", run: () => trash(ids, { restore: !restore }) };
  const putBack = leaves ? removeFromList(ids, message, undo) : null;
  if (!leaves) {
    for (const id of ids) {
      const item = state.items[indexOfId(id)];
      if (item) item.trashed = !restore;
    }
    grid.update(grid.nodes.keys());
  }
  queue.push({
    label: restore ? "restore" : "trash",
    method: "POST",
    url: `${config.assets}${restore ? "restore" : "trash"}/`,
    body: { assets: ids },
    onDone: refreshCounts,
    onFail: (error) => {
      putBack?.();
      refused(error, restore ? "Nothing was restored." : "Nothing was moved to the trash.");
    },
  });
}

function addToFolder(folder, ids) {
  if (locked() || !ids.length) return;
  const changed = [];
  for (const id of ids) {
    const index = indexOfId(id);
    if (index >= 0 && !state.items[index].folders.includes(folder.id)) {
      state.items[index].folders.push(folder.id);
      changed.push(index);
    }
  }
  grid.update(changed);
  toast(`Added ${plural(ids.length, "photo")} to ${folder.name}.`, { kind: "success" });
  queue.push({
    label: "add to folder",
    method: "POST",
    url: `${config.folders}${folder.id}/add/`,
    body: { assets: ids },
    onDone: refreshCounts,
    onFail: (error) => {
      for (const index of changed) {
        state.items[index].folders = state.items[index].folders.filter((f) => f !== folder.id);
      }
      grid.update(changed);
      refused(error, `Not added to ${folder.name}.`);
    },
  });
}

function removeFromFolder(ids) {
  const folder = currentFolder();
  if (!folder || locked() || !ids.length) return;
  const putBack = removeFromList(ids, `Removed ${plural(ids.length, "photo")} from ${folder.name}.`, {
    label: "Undo",
    run: () => addToFolder(folder, ids),
  });
  queue.push({
    label: "remove from folder",
    method: "POST",
    url: `${config.folders}${folder.id}/remove/`,
    body: { assets: ids },
    onDone: refreshCounts,
    onFail: (error) => {
      putBack();
      refused(error, "Nothing was removed.");
    },
  });
}

function reorderFolder(from, to) {
  const folder = currentFolder();
  if (!folder || from === to) return;
  const before = [...state.items];
  const [moved] = state.items.splice(from, 1);
  state.items.splice(to, 0, moved);
  state.active = to;
  grid.setItems(state.items);
  queue.push({
    label: "reorder",
    method: "POST",
    url: `${config.folders}${folder.id}/reorder-assets/`,
    body: { assets: state.items.map((i) => i.id) },
    onFail: (error) => {
      state.items.splice(0, state.items.length, ...before);
      grid.setItems(state.items);
      refused(error, "The new order was not saved.");
    },
  });
}

function dropOnFolder(folder, event) {
  const id = event.item.dataset.id;
  const ids = selection.has(id) ? [...selection.ids] : [id];
  addToFolder(folder, ids);
}

async function notMe(id) {
  const item = state.items[indexOfId(id)];
  if (!item) return;
  const putBack = removeFromList([id]);
  findMe.setCount(findMe.count - 1);
  grid.nodeFor(state.active)?.querySelector(".tile-notme")?.focus();
  try {
    await findMe.notMe(id);
    toast(`Removed ${item.filename} from your photos.`, { kind: "success" });
  } catch (error) {
    putBack();
    findMe.setCount(findMe.count + 1);
    toast(`Not removed. ${error.message}`, { kind: "error" });
  }
}

// --- folders: create, rename, delete -------------------------------------------------------------------

function ask({ title, text = "", value = null, ok = "OK" }) {
  const dialog = $("prompt-dialog");
  $("prompt-title").textContent = title;
  $("prompt-text").textContent = text;
  $("prompt-text").hidden = !text;
  $("prompt-field").hidden = value === null;
  const input = dialog.querySelector("input");
  input.value = value ?? "";
  input.required = value !== null;
  $("prompt-ok").textContent = ok;
  dialog.returnValue = "";
  dialog.showModal();
  if (value !== null) input.select();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "ok" ? (value === null ? true : input.value.trim()) : null),
      { once: true },
    );
  });
}

async function createFolder(name) {
  try {
    const folder = await request("POST", config.folders, { name });
    toast(`Folder “${folder.name}” created.`, { kind: "success" });
    await loadFolders();
    return folder;
  } catch (error) {
    toast(`The folder was not created. ${error.fields?.name?.[0] || error.message}`, { kind: "error" });
    return null;
  }
}

async function renameFolder() {
  const folder = currentFolder();
  if (!folder) return;
  const name = await ask({ title: "Rename folder", value: folder.name, ok: "Rename" });
  if (!name || name === folder.name) return;
  try {
    await request("PATCH", `${config.folders}${folder.id}/`, { name });
    await loadFolders();
    toast("Folder renamed.", { kind: "success" });
  } catch (error) {
    toast(`Not renamed. ${error.fields?.name?.[0] || error.message}`, { kind: "error" });
  }
}

async function deleteFolder() {
  const folder = currentFolder();
  if (!folder) return;
  const sure = await ask({
    title: `Delete “${folder.name}”?`,
    text: "The photos stay in the gallery; only the folder goes.",
    ok: "Delete folder",
  });
  if (!sure) return;
  try {
    await request("DELETE", `${config.folders}${folder.id}/`);
    toast(`Folder “${folder.name}” deleted.`, { kind: "success" });
    location.hash = "all";
    await Promise.all([loadFolders(), loadGallery()]);
  } catch (error) {
    toast(`Not deleted. ${error.message}`, { kind: "error" });
  }
}

// --- finalise -----------------------------------------------------------------------------------------

async function finalise() {
  const gallery = state.gallery;
  const chosen = gallery.counts.selected;
  const limit = gallery.selection_limit;
  const dialog = $("finalise-dialog");
  const over = limit && chosen > limit;
  $("finalise-text").textContent = over
    ? `You chose ${plural(chosen, "photo")}; this gallery allows up to ${limit}. Remove ${chosen - limit} first.`
    : `You chose ${plural(chosen, "photo")}${limit ? ` of the ${limit} this gallery allows` : ""}.`;
  $("finalise-confirm").disabled = Boolean(over);
  dialog.returnValue = "";
  dialog.showModal();
  await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
  if (dialog.returnValue !== "confirm") return;
  if (queue.pending) {
    toast("Some changes are still waiting to be saved: finalise once they are.", { kind: "error" });
    return;
  }
  try {
    await request("POST", config.selection);
    await loadGallery();
    toast("Selection finalised. Thank you!", { kind: "success" });
  } catch (error) {
    toast(`Not finalised. ${error.message}`, { kind: "error" });
    await loadGallery().catch(() => {});
  }
}

// --- views and the viewer -------------------------------------------------------------------------------

function setView(view, { remember = true } = {}) {
  state.view = view;
  if (remember) localStorage.setItem(viewKey, view);
  for (const button of document.querySelectorAll("[data-view]")) {
    button.setAttribute("aria-checked", String(button.dataset.view === view));
    button.tabIndex = button.dataset.view === view ? 0 : -1;
  }
  photos.classList.toggle("is-list", view === "list");
  grid.rowHeight = 0;
  grid.refresh();
  if (view === "carousel") openAt(state.active);
}

let opening = false;
async function openAt(index) {
  if (!state.items[index] || state.viewer || opening) return;
  // PhotoSwipe loads on first use: a third of the page's JS that browsing the grid never needs.
  opening = true;
  let openViewer;
  try {
    ({ openViewer } = await import("./viewer.js"));
  } catch {
    toast("The viewer could not be loaded. Check the connection and try again.", { kind: "error" });
    return;
  } finally {
    opening = false;
  }
  state.viewer = openViewer({
    items: state.items,
    index,
    total: placeTotal,
    locked: () => locked() || state.place.kind === "trash",
    downloadUrl,
    onRate: (item, stars) => rate([item.id], stars),
    onChange: (i) => {
      state.active = Math.min(i, state.items.length - 1);
    },
    onNearEnd: () => loadMore(),
    onClose: (i) => {
      state.viewer = null;
      // The carousel is a way of looking, not a place: closing it goes back to the grid.
      if (state.view === "carousel") setView("grid");
      const node = grid.reveal(Math.min(i, state.items.length - 1));
      grid.update([...grid.nodes.keys()]);
      node?.querySelector(".tile-photo")?.focus();
    },
  });
}

// --- the selection bar ----------------------------------------------------------------------------------

function renderSelectionBar() {
  const count = selection.size;
  $("selectionbar").hidden = count === 0;
  $("hint").hidden = count > 0;
  $("selected-count").textContent = count ? `${plural(count, "photo")} selected` : "";
  const inTrash = state.place.kind === "trash";
  const folder = currentFolder();
  document.querySelector('[data-action="trash"]').hidden = inTrash;
  document.querySelector('[data-action="restore"]').hidden = !inTrash;
  document.querySelector('[data-action="remove-from-folder"]').hidden = !(folder?.editable && !locked());
  document.body.classList.toggle("has-selection", count > 0);
}

// --- events -------------------------------------------------------------------------------------------

let lastPointer = "mouse";
photos.addEventListener("pointerdown", (event) => {
  lastPointer = event.pointerType || "mouse";
});

photos.addEventListener("click", (event) => {
  const tile = event.target.closest(".tile");
  if (!tile) return;
  const index = Number(tile.dataset.index);
  if (event.target.closest(".tile-open")) {
    openAt(index);
    return;
  }
  if (event.target.closest(".tile-notme")) {
    notMe(tile.dataset.id);
    return;
  }
  if (!event.target.closest(".tile-photo, .tile-check")) return;
  const previous = state.active;
  state.active = index;
  grid.update([previous]);
  if (event.shiftKey) selection.range(state.items, index);
  else if (event.ctrlKey || event.metaKey || lastPointer === "touch" || selection.size > 1) selection.toggle(state.items, index);
  else selection.only(state.items, index);
});

photos.addEventListener("dblclick", (event) => {
  const tile = event.target.closest(".tile");
  if (tile && event.target.closest(".tile-photo")) openAt(Number(tile.dataset.index));
});

bindRatings(photos, (fieldset, stars) => {
  const tile = fieldset.closest(".tile");
  rate([tile.dataset.id], stars);
});

bindKeyboard({
  list: photos,
  columns: () => (state.view === "list" ? 1 : grid.cols),
  active: () => state.active,
  count: () => state.items.length,
  viewerOpen: () => Boolean(state.viewer),
  move: (index, extend) => focusIndex(index, { extend }),
  open: () => openAt(state.active),
  toggle: () => selection.toggle(state.items, state.active),
  rate: (stars) => rate(targetIds(), stars),
  trash: () => state.place.kind !== "trash" && trash(targetIds()),
  selectAll: () => selection.all(state.items),
  clear: () => selection.clear(state.items),
  shortcuts: () => $("shortcuts-dialog").showModal(),
});

document.addEventListener("click", (event) => {
  const action = event.target.closest("[data-action]")?.dataset.action;
  const handlers = {
    shortcuts: () => $("shortcuts-dialog").showModal(),
    finalise,
    trash: () => trash(targetIds()),
    restore: () => trash(targetIds(), { restore: true }),
    "select-all": () => selection.all(state.items),
    "clear-selection": () => selection.clear(state.items),
    "remove-from-folder": () => removeFromFolder(targetIds()),
    "rename-folder": renameFolder,
    "delete-folder": deleteFolder,
    "retry-load": () => loadMore(),
    "findme-clear": () => {
      location.hash = "all";
    },
  };
  if (action && handlers[action]) handlers[action]();
  const view = event.target.closest("[data-view]")?.dataset.view;
  if (view) setView(view);
});

document.querySelector(".pg-views").addEventListener("keydown", (event) => {
  // A radio group: arrows move between the layouts.
  if (!["ArrowLeft", "ArrowRight"].includes(event.key)) return;
  const next = (VIEWS.indexOf(state.view) + (event.key === "ArrowRight" ? 1 : 2)) % 3;
  setView(VIEWS[next]);
  document.querySelector(`[data-view="${VIEWS[next]}"]`).focus();
  event.preventDefault();
});

document.querySelector('[data-action="bulk-rate"]').addEventListener("change", (event) => {
  if (event.target.value === "") return;
  rate(targetIds(), Number(event.target.value) || null);
  event.target.value = "";
});

$("bulk-folder").addEventListener("change", (event) => {
  const folder = state.folders.find((f) => f.id === event.target.value);
  if (folder) addToFolder(folder, targetIds());
  event.target.value = "";
});

$("new-folder").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = event.target.elements.name;
  const name = input.value.trim();
  if (!name) return;
  if (await createFolder(name)) input.value = "";
});

window.addEventListener("hashchange", () => showPlace(placeFromHash()));

// A reopened selection unlocks without a reload: look again when the client comes back.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refreshCounts();
});
setInterval(() => {
  if (locked() && document.visibilityState === "visible") loadGallery().catch(() => {});
}, 30000);

window.addEventListener("beforeunload", (event) => {
  if (queue.pending) event.preventDefault();
});

// Drag photos onto a folder in the sidebar (and, inside one of your folders,
// to reorder it). Touch waits a moment so a swipe still scrolls.
const gridSortable = Sortable.create(photos, {
  group: { name: "photos", pull: "clone", put: false },
  sort: false,
  draggable: ".tile",
  handle: ".tile-photo",
  forceFallback: true,
  fallbackOnBody: true,
  fallbackTolerance: 4,
  delayOnTouchOnly: true,
  delay: 250,
  ghostClass: "tile-ghost",
  chosenClass: "tile-chosen",
  onChoose(event) {
    const id = event.item.dataset.id;
    const count = selection.has(id) ? selection.size : 1;
    if (count > 1) event.item.dataset.dragCount = String(count);
    else delete event.item.dataset.dragCount;
  },
  onStart() {
    grid.frozen = true;
    root.classList.add("is-dragging");
  },
  onEnd(event) {
    grid.frozen = false;
    root.classList.remove("is-dragging");
    delete event.item.dataset.dragCount;
    if (event.to === event.from && event.oldIndex !== event.newIndex && state.place.kind === "folder") {
      reorderFolder(grid.start + event.oldIndex, grid.start + event.newIndex);
      return;
    }
    if (event.to !== event.from) event.clone?.remove();
    grid.refresh();
  },
});

// --- start ---------------------------------------------------------------------------------------------

async function loadHeader() {
  try {
    await Promise.all([loadGallery(), loadFolders()]);
  } catch (error) {
    toast(`The gallery could not be loaded. ${error.message}`, {
      kind: "error",
      timeout: 0,
      action: { label: "Retry", run: loadHeader },
    });
  }
}

async function start() {
  setView(state.view === "carousel" ? "grid" : state.view, { remember: false });
  // The photos do not wait for the header: both requests leave at once.
  const header = loadHeader();
  showPlace(placeFromHash());
  findMe.load();
  await header;
  renderEmpty();
  if (localStorage.getItem(viewKey) === "carousel") {
    // Reopen the carousel once its first photos are there.
    const wait = setInterval(() => {
      if (state.items.length) {
        clearInterval(wait);
        setView("carousel");
      } else if (!state.next && !state.loading) clearInterval(wait);
    }, 100);
  }
  if (queue.pending) queue.run();
}

start();
