// A windowed photo list. Only the rows near the viewport are in the DOM
// (plus a buffer of about one screen above and below); the rest of the list
// is represented by the list's top and bottom padding. Nodes leaving the
// window are removed, so their images are released too: the DOM and the
// decoded-image memory stay bounded however far the client scrolls. The
// data (a few hundred bytes a photo) stays in memory, so scrolling back needs
// no refetch. Pages are fetched as a sentinel below the list nears the
// viewport (IntersectionObserver).

const BUFFER_SCREENS = 1;

export class PhotoGrid {
  constructor({ list, sentinel, renderItem, patchItem, onNeedMore }) {
    this.list = list;
    this.sentinel = sentinel;
    this.renderItem = renderItem;
    this.patchItem = patchItem;
    this.onNeedMore = onNeedMore;
    this.items = [];
    this.nodes = new Map(); // index -> li
    this.start = 0;
    this.end = 0;
    this.cols = 1;
    this.rowHeight = 0;
    this.frozen = false;
    this.pending = false;
    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) this.onNeedMore();
      },
      { rootMargin: "1200px 0px" },
    );
    this.observer.observe(sentinel);
    const schedule = () => this.schedule();
    window.addEventListener("scroll", schedule, { passive: true });
    window.addEventListener("resize", () => {
      this.rowHeight = 0;
      this.refresh();
    });
  }

  setItems(items) {
    this.items = items;
    this.refresh();
  }

  /** Throw the rendered nodes away and render the window again. */
  refresh() {
    for (const node of this.nodes.values()) node.remove();
    this.nodes.clear();
    this.start = this.end = 0;
    this.render();
  }

  /** Bring rendered nodes up to date (a rating, a selection change) in place,
   * so focus and loaded images survive. */
  update(indexes) {
    for (const index of indexes) {
      const node = this.nodes.get(index);
      if (node) this.patchItem(node, this.items[index], index);
    }
  }

  nodeFor(index) {
    return this.nodes.get(index) || null;
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  measure() {
    const columns = getComputedStyle(this.list).gridTemplateColumns;
    this.cols = Math.max(1, columns && columns !== "none" ? columns.split(" ").length : 1);
    const first = this.list.querySelector(".tile");
    if (first) {
      const gap = parseFloat(getComputedStyle(this.list).rowGap) || 0;
      this.rowHeight = first.getBoundingClientRect().height + gap;
    }
  }

  render() {
    if (this.frozen) return;
    const count = this.items.length;
    if (!count) {
      this.list.style.paddingTop = "0px";
      this.list.style.paddingBottom = "0px";
      return;
    }
    if (!this.rowHeight) {
      // Render a first row to measure the layout, then the real window.
      this.place(0, Math.min(count, 24));
      this.measure();
      if (!this.rowHeight) return;
    }
    const rows = Math.ceil(count / this.cols);
    const top = this.list.getBoundingClientRect().top;
    const screen = window.innerHeight;
    const firstRow = Math.max(0, Math.floor((-top - screen * BUFFER_SCREENS) / this.rowHeight));
    const lastRow = Math.min(rows, Math.ceil((screen * (1 + BUFFER_SCREENS) - top) / this.rowHeight));
    this.place(firstRow * this.cols, Math.min(count, Math.max(lastRow, firstRow + 1) * this.cols));
    this.list.style.paddingTop = `${firstRow * this.rowHeight}px`;
    const renderedRows = Math.ceil((this.end - this.start) / this.cols);
    this.list.style.paddingBottom = `${Math.max(0, rows - firstRow - renderedRows) * this.rowHeight}px`;
  }

  /** Make exactly the indexes [start, end) rendered, reusing the nodes that stay. */
  place(start, end) {
    if (start === this.start && end === this.end && this.nodes.size) return;
    for (const [index, node] of this.nodes) {
      if (index < start || index >= end) {
        node.remove();
        this.nodes.delete(index);
      }
    }
    let before = null;
    for (let index = end - 1; index >= start; index--) {
      let node = this.nodes.get(index);
      if (!node) {
        node = this.renderItem(this.items[index], index);
        this.nodes.set(index, node);
        this.list.insertBefore(node, before);
      }
      before = node;
    }
    this.start = start;
    this.end = end;
  }

  /** Bring an index into the window (scrolling the page) and return its node. */
  reveal(index) {
    if (!this.rowHeight) this.render();
    let node = this.nodes.get(index);
    const row = Math.floor(index / this.cols);
    const listTop = this.list.getBoundingClientRect().top + window.scrollY;
    const y = listTop + row * this.rowHeight;
    const viewTop = window.scrollY + 80;
    const viewBottom = window.scrollY + window.innerHeight - 20;
    if (y < viewTop) window.scrollTo({ top: y - 100 });
    else if (y + this.rowHeight > viewBottom) window.scrollTo({ top: y + this.rowHeight - window.innerHeight + 40 });
    this.render();
    node = this.nodes.get(index);
    return node || null;
  }

  /** True when the sentinel is near the viewport (the observer fires only on changes). */
  nearEnd() {
    const rect = this.sentinel.getBoundingClientRect();
    return rect.top < window.innerHeight + 1200;
  }
}
