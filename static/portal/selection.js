// Which photos are selected: ids (they survive paging and re-rendering) and
// the anchor of Shift ranges, as an index into the loaded list.

export class Selection {
  constructor(onChange) {
    this.ids = new Set();
    this.anchor = null;
    this.onChange = onChange;
  }

  has(id) {
    return this.ids.has(id);
  }

  get size() {
    return this.ids.size;
  }

  changed(indexes) {
    this.onChange(indexes);
  }

  only(items, index) {
    const id = items[index].id;
    const wasOnly = this.ids.size === 1 && this.ids.has(id);
    const touched = this.indexesOf(items);
    this.ids.clear();
    if (!wasOnly) this.ids.add(id);
    this.anchor = index;
    this.changed([...touched, index]);
  }

  toggle(items, index) {
    const id = items[index].id;
    if (this.ids.has(id)) this.ids.delete(id);
    else this.ids.add(id);
    this.anchor = index;
    this.changed([index]);
  }

  add(items, index) {
    this.ids.add(items[index].id);
    if (this.anchor === null) this.anchor = index;
    this.changed([index]);
  }

  range(items, index) {
    const from = this.anchor ?? index;
    const [a, b] = from < index ? [from, index] : [index, from];
    const touched = [];
    for (let i = a; i <= b; i++) {
      this.ids.add(items[i].id);
      touched.push(i);
    }
    this.changed(touched);
  }

  all(items) {
    for (const item of items) this.ids.add(item.id);
    this.changed(null);
  }

  clear(items) {
    const touched = this.indexesOf(items);
    this.ids.clear();
    this.anchor = null;
    this.changed(touched);
  }

  /** Forget ids no longer listed (trashed, removed from the folder). */
  keepOnly(items) {
    const present = new Set(items.map((i) => i.id));
    for (const id of [...this.ids]) if (!present.has(id)) this.ids.delete(id);
    this.anchor = null;
    this.changed(null);
  }

  indexesOf(items) {
    const out = [];
    items.forEach((item, index) => {
      if (this.ids.has(item.id)) out.push(index);
    });
    return out;
  }
}
