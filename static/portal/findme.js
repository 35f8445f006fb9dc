// "Find me" (issue 13): when the gallery offers it, the client takes or
// picks a selfie and the grid shows only the photos they appear in.
//
// The selfie lives only in this module's locals while it is sent: it is
// never written to localStorage, IndexedDB or an object URL, the file input
// is emptied straight after, and the camera stops as soon as it has its
// frame. The server compares it in memory and forgets it too. What stays is
// the search key (a random token the asset list filters on) and the match
// count, in memory for this page only.

import { ApiError, request } from "./api.js";

// The server looks for faces on a 1024 px copy: more only costs upload time
// on a phone's connection.
const MAX_SIDE = 1280;
const KEEP_AS_IS_BYTES = 2 * 1024 * 1024;

const REASONS = {
  no_face: "We could not see a face in that photo. Try a well-lit photo of you facing the camera.",
  several_faces: "That photo shows several faces of similar size. Use a photo of only you.",
  too_small: "That photo is too small. Try a larger one, with your face filling more of it.",
  blank: "That photo looks empty. Try another one.",
  decode: "That file could not be read as a photo. Try a JPEG or PNG.",
  bad_input: "That file could not be read as a photo. Try a JPEG or PNG.",
  too_large: "That photo is too large. Try a smaller one.",
};

function minutes(seconds) {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} second${Math.round(seconds) === 1 ? "" : "s"}`;
  const n = Math.ceil(seconds / 60);
  return `${n} minute${n === 1 ? "" : "s"}`;
}

/** What to tell the client for an error in the API's one error shape. */
export function findMeErrorText(error) {
  if (!(error instanceof ApiError)) return "Something went wrong. Please try again.";
  if (error.network) return "No connection to the server: check it and try again.";
  if (error.code === "INVALID_SELFIE") return REASONS[error.details?.reason] || error.message;
  if (error.code === "TOO_MANY_SEARCHES") {
    const wait = error.details?.retry_after_seconds;
    return wait ? `Too many searches for now: try again in ${minutes(wait)}.` : error.message;
  }
  if (error.code === "FIND_ME_DISABLED") return "The studio no longer offers “Find me” in this gallery.";
  return error.fields?.selfie?.[0] || error.message;
}

/** A smaller JPEG of the photo, in memory; the file itself when small enough or unreadable here (HEIC...). */
async function shrink(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    return file; // the server knows more formats than this browser may
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  if (scale === 1 && file.size <= KEEP_AS_IS_BYTES) {
    bitmap.close();
    return file;
  }
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
  canvas.width = canvas.height = 0; // let the pixels go now, not at the next GC
  return blob || file;
}

export class FindMe {
  /**
   * url: the gallery's find-me endpoint.
   * onFound({ key, matches }): a search found photos (at least one).
   * onDisabled(): the gallery stopped offering it.
   */
  constructor({ url, root, onFound, onDisabled }) {
    this.url = url;
    this.notMeUrl = `${url}not-me/`;
    this.onFound = onFound;
    this.onDisabled = onDisabled || (() => {});
    this.enabled = false;
    this.key = null;
    this.count = 0;
    this.confidence = new Map(); // asset id -> "sure" | "likely"
    this.controller = null;
    this.stream = null;
    const $ = (role) => root.querySelector(`[data-role="${role}"]`);
    this.button = $("findme-button");
    this.dialog = $("findme-dialog");
    this.heading = $("findme-title");
    this.consent = $("findme-consent");
    this.choices = $("findme-choices");
    this.captureInput = $("findme-capture");
    this.fileInput = $("findme-file");
    this.camera = $("findme-camera");
    this.video = $("findme-video");
    this.busy = $("findme-busy");
    this.error = $("findme-error");
    this.bar = $("findme-bar");
    this.summary = $("findme-summary");

    this.button.addEventListener("click", () => this.open());
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog && !this.controller) this.dialog.close(); // the backdrop
      const action = event.target.closest("[data-findme-action]")?.dataset.findmeAction;
      const actions = {
        camera: () => this.takeSelfie(),
        upload: () => this.fileInput.click(),
        snap: () => this.snap(),
        "camera-back": () => this.showChoices(),
        close: () => this.dialog.close(),
      };
      if (action && actions[action]) actions[action]();
    });
    for (const input of [this.captureInput, this.fileInput]) {
      input.addEventListener("change", () => {
        const file = input.files[0];
        input.value = ""; // the page keeps no reference to the photo
        if (file) this.search(file);
      });
    }
    // A modal dialog makes the page inert, but Tab would still leave for the
    // browser's own controls: keep it going round the dialog.
    this.dialog.addEventListener("keydown", (event) => {
      if (event.key !== "Tab") return;
      const stops = [...this.dialog.querySelectorAll("button, [tabindex='0']")].filter(
        (el) => !el.disabled && el.getClientRects().length,
      );
      const [first, last] = [stops[0], stops[stops.length - 1]];
      if (!first) return;
      const inside = this.dialog.contains(document.activeElement) && document.activeElement !== this.heading;
      if (event.shiftKey && (document.activeElement === first || !inside)) {
        last.focus();
        event.preventDefault();
      } else if (!event.shiftKey && document.activeElement === last) {
        first.focus();
        event.preventDefault();
      }
    });
    // Esc, the Close button or the backdrop: stop whatever is under way.
    this.dialog.addEventListener("close", () => {
      this.stopCamera();
      this.controller?.abort();
      this.controller = null;
      this.setBusy(false);
    });
  }

  /** Ask the server whether this gallery offers it; the button shows if so. */
  async load() {
    try {
      const info = await request("GET", this.url);
      this.enabled = Boolean(info.enabled);
      this.consent.textContent = info.consent_text || "";
    } catch {
      this.enabled = false; // an extra, not the page: no button rather than an error
    }
    this.button.hidden = !this.enabled;
  }

  // --- the dialog -----------------------------------------------------------------------------------

  open() {
    this.showError("");
    this.showChoices();
    this.dialog.showModal();
    this.heading.focus();
  }

  showChoices() {
    this.stopCamera();
    this.camera.hidden = true;
    this.choices.hidden = false;
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  setBusy(busy) {
    this.busy.hidden = !busy;
    this.choices.hidden = busy;
    if (busy) this.camera.hidden = true;
    for (const button of this.dialog.querySelectorAll("[data-findme-action]:not([data-findme-action='close'])")) {
      button.disabled = busy;
    }
    this.dialog.setAttribute("aria-busy", String(busy));
  }

  // --- the selfie: the camera on a computer, the phone's own camera app otherwise ---------------------

  async takeSelfie() {
    // On a phone the file input opens the front camera itself, full screen
    // and with the system's controls: better than a video in a dialog.
    const desktop = window.matchMedia("(pointer: fine)").matches;
    if (!desktop || !navigator.mediaDevices?.getUserMedia) {
      this.captureInput.click();
      return;
    }
    this.showError("");
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "user", width: { ideal: 1280 } },
        audio: false,
      });
    } catch {
      // No camera, or no permission: picking a photo still works.
      this.showError("The camera is not available. Choose “Upload a photo” instead.");
      return;
    }
    if (!this.dialog.open) {
      this.stopCamera();
      return;
    }
    this.video.srcObject = this.stream;
    this.choices.hidden = true;
    this.camera.hidden = false;
    this.camera.querySelector("[data-findme-action='snap']").focus();
  }

  async snap() {
    const { videoWidth: width, videoHeight: height } = this.video;
    if (!width || !height) return; // not started yet
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d").drawImage(this.video, 0, 0, width, height);
    this.stopCamera();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
    canvas.width = canvas.height = 0;
    if (blob) this.search(blob);
    else this.showError("The photo could not be taken. Try again, or upload one.");
  }

  stopCamera() {
    for (const track of this.stream?.getTracks() || []) track.stop();
    this.stream = null;
    if (this.video) this.video.srcObject = null;
    if (this.camera) this.camera.hidden = true;
  }

  // --- the search ----------------------------------------------------------------------------------------

  async search(file) {
    this.showError("");
    this.setBusy(true);
    const controller = new AbortController();
    this.controller = controller;
    try {
      const body = new FormData();
      body.append("selfie", await shrink(file), "selfie.jpg");
      const result = await request("POST", this.url, body, { signal: controller.signal });
      if (controller.signal.aborted) return;
      this.controller = null;
      this.setBusy(false);
      if (!result.matches.length) {
        this.showError("We did not find you in this gallery’s photos. A clearer photo of your face may help.");
        this.heading.focus();
        return;
      }
      this.key = result.key;
      this.count = result.matches.length;
      this.confidence = new Map(result.matches.map((m) => [m.asset, m.confidence]));
      this.dialog.close();
      this.onFound(result);
    } catch (error) {
      if (controller.signal.aborted) return;
      this.controller = null;
      this.setBusy(false);
      if (error instanceof ApiError && error.code === "FIND_ME_DISABLED") {
        this.enabled = false;
        this.button.hidden = true;
        this.onDisabled();
      }
      this.showError(findMeErrorText(error));
    }
  }

  // --- the results view ------------------------------------------------------------------------------

  /** "Not me": the server leaves the photo out for this session; the caller takes it off the grid. */
  async notMe(assetId) {
    await request("POST", this.notMeUrl, { asset: assetId });
    this.confidence.delete(assetId);
  }

  setCount(count) {
    this.count = Math.max(0, count);
    this.renderBar(true);
  }

  renderBar(active) {
    this.bar.hidden = !active;
    if (active) this.summary.textContent = `Showing photos of you (${this.count.toLocaleString()})`;
  }

  clear() {
    this.key = null;
    this.count = 0;
    this.confidence.clear();
    this.renderBar(false);
  }
}
