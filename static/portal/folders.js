// The folder sidebar: links with counts, the studio's folders marked
// read-only, and each of the client's folders a SortableJS drop target
// (mouse and touch) for photos dragged from the grid.

import Sortable from "../vendor/sortablejs-1.15.7/sortable.complete.esm.js";

export function renderFolders(list, folders, { current, locked, onDrop }) {
  for (const old of list.querySelectorAll(".pg-folder")) old._sortable?.destroy();
  if (!folders.length) {
    const empty = document.createElement("li");
    empty.className = "pg-folders-empty";
    empty.textContent = "No folders yet.";
    list.replaceChildren(empty);
    return;
  }
  list.replaceChildren(
    ...folders.map((folder) => {
      const li = document.createElement("li");
      li.className = "pg-folder";
      li.dataset.folder = folder.id;
      const link = document.createElement("a");
      link.href = `#folder-${folder.id}`;
      link.className = "pg-place";
      link.dataset.place = "folder";
      link.dataset.folder = folder.id;
      if (current === folder.id) link.setAttribute("aria-current", "page");
      const name = document.createElement("span");
      name.className = "pg-folder-name";
      name.textContent = folder.name;
      link.append(name);
      if (!folder.editable) {
        const lock = document.createElement("span");
        lock.className = "pg-folder-tag";
        lock.textContent = "Studio";
        lock.title = "The studio's folder: you can view it, not change it.";
        link.append(" ", lock);
      }
      const badge = document.createElement("span");
      badge.className = "pg-badge";
      badge.textContent = String(folder.asset_count);
      badge.setAttribute("aria-label", `${folder.asset_count} photos`);
      link.append(" ", badge);
      li.append(link);
      if (folder.editable && !locked) {
        li.classList.add("is-drop-target");
        li._sortable = Sortable.create(li, {
          group: { name: "folder", pull: false, put: ["photos"] },
          sort: false,
          draggable: ".tile",
          ghostClass: "drop-ghost",
          onAdd(event) {
            event.item.remove();
            onDrop(folder, event);
          },
        });
      }
      return li;
    }),
  );
}
