// Keyboard use of the photo list: arrows move focus (Shift extends the
// selection), Enter opens the viewer, Space selects, 1-5 rate, 0 clears,
// Delete trashes, Ctrl/Cmd+A selects all, Esc clears, ? lists the shortcuts.

const typing = (target) => target.closest("input:not([type=radio]), textarea, select, [contenteditable]");

export function bindKeyboard(actions) {
  const { list } = actions;

  list.addEventListener("keydown", (event) => {
    const onPhoto = event.target.closest(".tile-photo");
    const onStars = event.target.closest(".stars");
    if (!onPhoto && !onStars) return;
    const key = event.key;
    if (/^[0-5]$/.test(key) && !event.ctrlKey && !event.metaKey && !event.altKey) {
      actions.rate(key === "0" ? null : Number(key));
      event.preventDefault();
      return;
    }
    if (!onPhoto) return; // arrows inside the stars change the rating (a radio group)
    const cols = actions.columns();
    const here = actions.active();
    const moves = {
      ArrowLeft: here - 1,
      ArrowRight: here + 1,
      ArrowUp: here - cols,
      ArrowDown: here + cols,
      Home: 0,
      End: actions.count() - 1,
    };
    if (key in moves) {
      const target = moves[key];
      if (target >= 0 && target < actions.count()) actions.move(target, event.shiftKey);
      event.preventDefault();
    } else if (key === "Enter") {
      actions.open();
      event.preventDefault();
    } else if (key === " ") {
      actions.toggle();
      event.preventDefault();
    } else if (key === "Delete" || key === "Backspace") {
      actions.trash();
      event.preventDefault();
    } else if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "a") {
      actions.selectAll();
      event.preventDefault();
    } else if (key === "Escape") {
      actions.clear();
    }
  });

  document.addEventListener("keydown", (event) => {
    if (actions.viewerOpen() || typing(event.target) || document.querySelector("dialog[open]")) return;
    if (event.key === "?") {
      actions.shortcuts();
      event.preventDefault();
    }
  });
}
