// Toasts: short messages in a polite live region; failures stay longer and
// may carry one action (Retry, Undo).

let region = null;

export function setToastRegion(element) {
  region = element;
}

export function toast(message, { kind = "info", action = null, timeout = null, id = null } = {}) {
  if (!region) return { dismiss() {}, update() {} };
  let element = id ? region.querySelector(`[data-toast-id="${id}"]`) : null;
  if (!element) {
    element = document.createElement("div");
    element.className = "toast";
    if (id) element.dataset.toastId = id;
    region.append(element);
  }
  element.classList.remove("toast-info", "toast-success", "toast-error");
  element.classList.add(`toast-${kind}`);
  element.setAttribute("role", kind === "error" ? "alert" : "status");
  const text = document.createElement("span");
  text.className = "toast-text";
  text.textContent = message;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "toast-close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  const parts = [text];
  if (action) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "toast-action";
    button.textContent = action.label;
    button.addEventListener("click", () => {
      dismiss();
      action.run();
    });
    parts.push(button);
  }
  parts.push(close);
  element.replaceChildren(...parts);
  let timer = null;
  function dismiss() {
    clearTimeout(timer);
    element.remove();
  }
  close.addEventListener("click", dismiss);
  const life = timeout ?? (kind === "error" ? 8000 : 4000);
  if (life > 0) timer = setTimeout(dismiss, life);
  return { dismiss, element };
}

export function dismissToast(id) {
  if (region) region.querySelector(`[data-toast-id="${id}"]`)?.remove();
}
