// The Download button: the client asks for a ZIP of the whole gallery, the
// folder they are looking at or their selection, in the sizes the studio
// allows. The server builds it in the background (the exports queue), so the
// dialog follows it: progress while it is built, the link once it is ready,
// the reason when it failed, and Cancel meanwhile. The visitor's recent ZIPs
// are listed again after a reload, and one still being built is followed on.

import { ApiError, request } from "./api.js";
import { toast } from "./toasts.js";

const ACTIVE = new Set(["queued", "running"]);
const SHOWN = 6; // the newest few; older ZIPs expire soon anyway
const POLL_FIRST_MS = 1000;
const POLL_MAX_MS = 8000;
const POLL_OFFLINE_MAX_MS = 30000;

const STATUS_TEXT = {
  queued: "Waiting to start…",
  running: "Preparing…",
  done: "Ready",
  failed: "Could not be prepared",
  cancelled: "Cancelled",
  expired: "Expired: prepare it again if you still need it",
};
const SIZE_TEXT = { web: "web size", original: "originals" };

function megabytes(bytes) {
  if (!bytes && bytes !== 0) return "";
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MB`;
}

function when(iso) {
  return new Date(iso).toLocaleString(undefined, { day: "numeric", month: "long", hour: "2-digit", minute: "2-digit" });
}

export class Downloads {
  /**
   * url: the portal's exports endpoint of this gallery.
   * folderName(id): a folder's name, for the list ("Folder: Album").
   */
  constructor({ url, root, folderName }) {
    this.url = url;
    this.folderName = folderName;
    this.exports = new Map(); // id -> export, newest first by created_at
    this.gallery = null;
    this.folder = null;
    this.loaded = false;
    this.timer = null;
    this.delay = POLL_FIRST_MS;
    this.polling = false;
    const $ = (role) => root.querySelector(`[data-role="${role}"]`);
    this.button = $("download-button");
    this.badge = $("download-badge");
    this.dialog = $("download-dialog");
    this.form = $("download-form");
    this.list = $("download-list");
    this.empty = $("download-empty");
    this.formError = $("download-form-error");
    this.announcer = $("download-status");
    this.folderOption = $("download-folder-option");
    this.folderLabel = $("download-folder-name");
    this.selectionOption = $("download-selection-option");
    this.selectionNote = $("download-selection-note");
    this.originalOption = $("download-original-option");
    this.submit = $("download-submit");
    this.heading = $("download-title");

    this.button.addEventListener("click", () => this.open());
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog) this.dialog.close(); // a click on the backdrop
      const action = event.target.closest("[data-download-action]");
      if (!action) return;
      if (action.dataset.downloadAction === "close") this.dialog.close();
      if (action.dataset.downloadAction === "cancel") this.cancel(action.closest("[data-id]").dataset.id, action);
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.requestZip();
    });
    document.addEventListener("visibilitychange", () => {
      // A hidden tab asks nothing; coming back looks at once.
      if (document.visibilityState === "visible" && this.hasActive()) this.schedule(0);
    });
  }

  // --- what the page tells us ----------------------------------------------------------------------

  setGallery(gallery) {
    this.gallery = gallery;
    const allowed = Boolean(gallery.can_download) && gallery.download_permission !== "none";
    this.button.hidden = !allowed;
    if (!allowed) {
      if (this.dialog.open) this.dialog.close();
      return;
    }
    this.originalOption.hidden = gallery.download_permission !== "originals";
    if (this.originalOption.hidden) this.form.elements.size.value = "web";
    const chosen = gallery.counts?.selected ?? 0;
    const input = this.selectionOption.querySelector("input");
    input.disabled = chosen === 0;
    this.selectionNote.textContent = chosen
      ? `(${chosen.toLocaleString()} photo${chosen === 1 ? "" : "s"})`
      : "(rate or file photos first)";
    if (input.disabled && input.checked) this.form.elements.scope.value = "gallery";
    if (!this.loaded) {
      this.loaded = true;
      this.load();
    }
  }

  setFolder(folder) {
    this.folder = folder;
    this.folderOption.hidden = !folder;
    this.folderLabel.textContent = folder ? folder.name : "";
    const input = this.folderOption.querySelector("input");
    if (!folder && input.checked) this.form.elements.scope.value = "gallery";
  }

  // --- the dialog ------------------------------------------------------------------------------------

  open() {
    this.formError.hidden = true;
    // In a folder, that folder is most likely what the client wants.
    if (this.folder) this.form.elements.scope.value = "folder";
    else if (this.form.elements.scope.value === "folder") this.form.elements.scope.value = "gallery";
    this.dialog.showModal();
    this.form.querySelector("input:checked")?.focus();
    if (this.hasActive()) this.schedule(0);
  }

  async load() {
    try {
      const page = await request("GET", `${this.url}?page_size=${SHOWN}`);
      const rows = Array.isArray(page) ? page : page?.results || [];
      for (const row of rows) this.exports.set(row.id, row);
      this.render();
      if (this.hasActive()) this.schedule(0);
    } catch {
      // The list is a convenience; asking for a ZIP still works without it.
    }
  }

  async requestZip() {
    const data = this.form.elements;
    const scope = data.scope.value || "gallery";
    const body = {
      kind: "zip",
      scope,
      folder: scope === "folder" ? this.folder?.id ?? null : null,
      size: this.originalOption.hidden ? "web" : data.size.value || "web",
    };
    this.formError.hidden = true;
    this.submit.disabled = true;
    try {
      const row = await request("POST", this.url, body);
      const known = this.exports.has(row.id);
      this.exports.set(row.id, row);
      this.render();
      if (known && ACTIVE.has(row.status)) this.announce("That ZIP is already being prepared: it is below.");
      else this.announceStatus(row);
      this.list.querySelector(`[data-id="${row.id}"]`)?.scrollIntoView({ block: "nearest" });
      if (ACTIVE.has(row.status)) {
        this.delay = POLL_FIRST_MS;
        this.schedule(POLL_FIRST_MS);
      }
    } catch (error) {
      this.formError.textContent = `The ZIP was not started. ${error.message}`;
      this.formError.hidden = false;
    } finally {
      this.submit.disabled = false;
    }
  }

  async cancel(id, button) {
    button.disabled = true;
    try {
      const row = await request("POST", `${this.url}${id}/cancel/`);
      this.exports.set(id, row || { ...this.exports.get(id), status: "cancelled" });
      this.announce("Cancelled.");
    } catch (error) {
      // It may have finished meanwhile: show what it is now.
      toast(`Not cancelled. ${error.message}`, { kind: "error" });
      await this.refresh(id).catch(() => {});
    }
    this.render();
  }

  // --- following the ones being built --------------------------------------------------------------------

  hasActive() {
    return [...this.exports.values()].some((row) => ACTIVE.has(row.status));
  }

  schedule(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.poll(), delay);
  }

  async refresh(id) {
    const before = this.exports.get(id);
    const row = await request("GET", `${this.url}${id}/`);
    this.exports.set(id, row);
    if (before && before.status !== row.status) this.finished(row);
    return before?.status !== row.status || before?.progress !== row.progress;
  }

  async poll() {
    if (this.polling) return;
    if (document.visibilityState === "hidden") return; // visibilitychange resumes
    const active = [...this.exports.values()].filter((row) => ACTIVE.has(row.status));
    if (!active.length) return;
    this.polling = true;
    let offline = false;
    let moved = false;
    for (const row of active) {
      try {
        moved = (await this.refresh(row.id)) || moved;
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          this.exports.delete(row.id); // gone (expired and deleted): nothing to follow
        } else {
          offline = true;
        }
      }
    }
    this.polling = false;
    this.render();
    if (!this.hasActive()) return;
    // Quick while it moves, slower while it waits in the queue or the line is down.
    this.delay = moved ? POLL_FIRST_MS : Math.min(this.delay * 1.5, offline ? POLL_OFFLINE_MAX_MS : POLL_MAX_MS);
    this.schedule(this.delay);
  }

  finished(row) {
    this.announceStatus(row);
    if (this.dialog.open) return;
    if (row.status === "done" && row.download_url) {
      toast(`Your ZIP is ready (${megabytes(row.file_size)}).`, {
        kind: "success",
        timeout: 0,
        action: { label: "Download", run: () => this.start(row) },
      });
    } else if (row.status === "failed") {
      toast(`Your ZIP could not be prepared. ${row.failure_reason || ""}`, { kind: "error", timeout: 0 });
    }
  }

  start(row) {
    const link = document.createElement("a");
    link.href = row.download_url;
    link.setAttribute("download", row.filename || "");
    document.body.append(link);
    link.click();
    link.remove();
  }

  announce(text) {
    this.announcer.textContent = "";
    // A fresh text node is read even when the sentence repeats.
    requestAnimationFrame(() => {
      this.announcer.textContent = text;
    });
  }

  announceStatus(row) {
    const what = this.describe(row);
    const text = {
      queued: `Preparing ${what}. It stays here while you browse.`,
      running: `Preparing ${what}.`,
      done: `${what} is ready to download.`,
      failed: `${what} could not be prepared. ${row.failure_reason || ""}`,
      cancelled: `${what} was cancelled.`,
      expired: `${what} has expired.`,
    }[row.status];
    if (text) this.announce(text.charAt(0).toUpperCase() + text.slice(1));
  }

  // --- drawing ----------------------------------------------------------------------------------------------

  describe(row) {
    const scope =
      row.scope === "folder"
        ? `the folder “${this.folderName(row.folder) || "folder"}”`
        : row.scope === "selection"
          ? "your selection"
          : "the whole gallery";
    return `${scope} (${SIZE_TEXT[row.size] || "web size"})`;
  }

  render() {
    const rows = [...this.exports.values()]
      .sort((a, b) => (a.created_at < b.created_at ? 1 : -1))
      .slice(0, SHOWN);
    this.empty.hidden = rows.length > 0;
    const existing = new Map([...this.list.children].map((li) => [li.dataset.id, li]));
    let refocus = null;
    const nodes = rows.map((row) => {
      const old = existing.get(row.id);
      // Same status: patch the numbers in place, so a focused Cancel stays focused.
      if (old && old.dataset.status === row.status) {
        this.patch(old, row);
        return old;
      }
      if (old?.contains(document.activeElement)) refocus = row.id;
      return this.item(row);
    });
    nodes.forEach((node, index) => {
      if (this.list.children[index] !== node) this.list.insertBefore(node, this.list.children[index] || null);
    });
    while (this.list.children.length > nodes.length) this.list.lastElementChild.remove();
    if (refocus) {
      // The control the client was on is gone (Cancel of a ZIP now ready): land on what replaced it.
      const target = this.list.querySelector(`[data-id="${refocus}"]`)?.querySelector("a, button") || this.heading;
      target?.focus();
    }
    const active = rows.filter((row) => ACTIVE.has(row.status)).length;
    this.badge.hidden = active === 0;
    this.badge.textContent = active ? `${active} being prepared` : "";
    this.button.classList.toggle("is-busy", active > 0);
  }

  statusText(row) {
    return row.status === "running" && row.progress
      ? `${STATUS_TEXT.running} ${row.progress}%`
      : STATUS_TEXT[row.status] || row.status;
  }

  patch(li, row) {
    li.querySelector(".pg-download-status").textContent = this.statusText(row);
    const bar = li.querySelector("progress");
    if (bar && row.status === "running") bar.value = row.progress || 0;
  }

  item(row) {
    const li = document.createElement("li");
    li.className = "pg-download";
    li.dataset.id = row.id;
    li.dataset.status = row.status;
    const what = this.describe(row);

    const head = document.createElement("div");
    head.className = "pg-download-head";
    const title = document.createElement("span");
    title.className = "pg-download-title";
    title.textContent = what.charAt(0).toUpperCase() + what.slice(1);
    const status = document.createElement("span");
    status.className = "pg-download-status";
    status.textContent = this.statusText(row);
    head.append(title, status);
    li.append(head);

    if (ACTIVE.has(row.status)) {
      const bar = document.createElement("progress");
      bar.max = 100;
      if (row.status === "running") bar.value = row.progress || 0; // queued: indeterminate
      bar.setAttribute("aria-label", `Progress of ${what}`);
      li.append(bar);
    }
    if (row.status === "failed") {
      const reason = document.createElement("p");
      reason.className = "pg-download-reason";
      reason.textContent = row.failure_reason || "Something went wrong on our side. Please try again.";
      li.append(reason);
    }

    const actions = document.createElement("div");
    actions.className = "pg-download-actions";
    if (row.status === "done" && row.download_url) {
      const link = document.createElement("a");
      link.className = "button button-small button-primary";
      link.href = row.download_url;
      link.setAttribute("download", row.filename || "");
      link.textContent = `Download ZIP${row.file_size ? ` (${megabytes(row.file_size)})` : ""}`;
      // The visible text first: speech users say what they see.
      link.setAttribute("aria-label", `${link.textContent}: ${what}`);
      actions.append(link);
      if (row.expires_at) {
        const until = document.createElement("span");
        until.className = "pg-download-until";
        until.textContent = `Available until ${when(row.expires_at)}`;
        actions.append(until);
      }
    }
    if (ACTIVE.has(row.status)) {
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "button button-small button-ghost";
      cancel.dataset.downloadAction = "cancel";
      cancel.textContent = "Cancel";
      cancel.setAttribute("aria-label", `Cancel ${what}`);
      actions.append(cancel);
    }
    if (actions.childElementCount) li.append(actions);
    return li;
  }
}
