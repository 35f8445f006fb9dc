// The full-screen viewer (the carousel view): PhotoSwipe 5 brings touch
// swipe, pinch and double-tap zoom, arrow keys and Esc. We add the rating
// control, the file name, and a download link when the studio allows it.

import PhotoSwipe from "../vendor/photoswipe-5.4.4/photoswipe.esm.min.js";
import { ratingControl, setRating, bindRatings } from "./rating.js";

export function slideFor(item) {
  const large = item.sizes.large || item.sizes.medium || item.sizes.thumb || { width: 1600, height: 1200 };
  const srcset = ["thumb", "medium", "large"]
    .filter((v) => item.urls[v] && item.sizes[v])
    .map((v) => `${item.urls[v]} ${item.sizes[v].width}w`)
    .join(", ");
  return {
    src: item.urls.large || item.urls.medium || item.urls.thumb,
    srcset,
    msrc: item.urls.thumb,
    width: large.width,
    height: large.height,
    alt: item.filename,
  };
}

/**
 * open({ items, index, locked, downloadUrl, onRate, onChange, onClose, onNearEnd })
 * items is the live array of loaded photos: pages loaded while the viewer is
 * open extend it (PhotoSwipe reads its length on every move).
 */
export function openViewer(options) {
  const { items, index } = options;
  const pswp = new PhotoSwipe({
    dataSource: items,
    index,
    loop: false,
    bgOpacity: 0.96,
    showHideAnimationType: "fade",
    preload: [1, 2],
    arrowPrevTitle: "Previous photo",
    arrowNextTitle: "Next photo",
    closeTitle: "Close (Esc)",
    zoomTitle: "Zoom",
    errorMsg: "This photo could not be loaded.",
    returnFocus: false,
    counter: false, // the caption says "3 of 120" with the file name
  });
  // The counter and swiping know the whole gallery; photos not fetched yet
  // show a placeholder until their page arrives (itemsChanged()).
  pswp.addFilter("numItems", (count) => Math.max(count, options.total()));
  pswp.addFilter("itemData", (data, i) =>
    items[i] ? slideFor(items[i]) : { html: '<div class="pswp-wait">Loading…</div>', placeholder: true },
  );

  let rating = null;
  let caption = null;
  let download = null;

  const current = () => items[pswp.currIndex];
  const refresh = () => {
    const item = current();
    if (!item) return;
    if (caption) caption.textContent = `${item.filename} · ${pswp.currIndex + 1} of ${options.total()}`;
    if (rating) {
      const fresh = ratingControl(item.filename, item.stars, { disabled: options.locked() });
      rating.replaceChildren(...fresh.childNodes);
      rating.dataset.stars = fresh.dataset.stars;
    }
    if (download) {
      const url = options.downloadUrl(item);
      download.hidden = !url;
      if (url) download.href = url;
    }
  };

  pswp.on("uiRegister", () => {
    pswp.ui.registerElement({
      name: "caption",
      order: 6,
      isButton: false,
      appendTo: "bar",
      onInit: (el) => {
        caption = document.createElement("p");
        caption.className = "pswp-caption";
        caption.setAttribute("aria-live", "polite");
        el.append(caption);
      },
    });
    pswp.ui.registerElement({
      name: "download-link",
      order: 8,
      isButton: false,
      appendTo: "bar",
      onInit: (el) => {
        download = document.createElement("a");
        download.className = "pswp__button pswp-download";
        download.setAttribute("download", "");
        download.setAttribute("aria-label", "Download this photo");
        const text = document.createElement("span");
        text.className = "pswp-download-text";
        text.textContent = "Download";
        download.append("↓ ", text);
        el.append(download);
      },
    });
    pswp.ui.registerElement({
      name: "rating",
      order: 9,
      isButton: false,
      appendTo: "wrapper",
      onInit: (el) => {
        el.classList.add("pswp-rating");
        rating = ratingControl("this photo", null);
        el.append(rating);
        bindRatings(el, (fieldset, stars) => {
          const item = current();
          if (!item || options.locked()) return;
          options.onRate(item, stars);
          setRating(rating, stars);
        });
      },
    });
  });
  pswp.on("change", () => {
    refresh();
    options.onChange(pswp.currIndex);
    if (pswp.currIndex >= items.length - 5) options.onNearEnd();
    if (!items[pswp.currIndex]) options.onNearEnd();
  });
  pswp.on("keydown", (event) => {
    const key = event.originalEvent.key;
    if (/^[0-5]$/.test(key) && !options.locked()) {
      const item = current();
      const stars = key === "0" ? null : Number(key);
      options.onRate(item, stars);
      if (rating) setRating(rating, stars);
      event.preventDefault();
    }
  });
  pswp.on("destroy", () => options.onClose(pswp.currIndex));
  pswp.init();
  // PhotoSwipe's dialog has no name of its own.
  pswp.element?.setAttribute("aria-label", "Photo viewer");
  refresh();
  return {
    pswp,
    refresh,
    itemsChanged() {
      // A page arrived: slides that showed a placeholder get their photo.
      for (let i = pswp.currIndex - 1; i <= pswp.currIndex + 2; i++) {
        if (items[i]) pswp.refreshSlideContent(i);
      }
      refresh();
    },
    close() {
      pswp.close();
    },
  };
}
