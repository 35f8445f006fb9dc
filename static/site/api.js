// Shared by the public booking pages: JSON calls to the public API with its
// one error shape turned into a readable message, and a status line.

export async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: {"Content-Type": "application/json"},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = response.status === 204 || response.status === 202 ? {} : await response.json();
  if (!response.ok) {
    const fields = Object.entries((data.error || {}).fields || {}).map(([k, v]) => k + ": " + v.join(" ")).join("; ");
    throw new Error(((data.error || {}).message || "Something went wrong.") + (fields ? " (" + fields + ")" : ""));
  }
  return data;
}

export function show(el, text, cls) {
  el.textContent = text;
  el.className = cls;
  el.hidden = false;
}

// A note in a slots grid (loading, nothing free, an error), spanning the row.
export function slotNote(slotsEl, text) {
  slotsEl.textContent = "";
  const p = document.createElement("p");
  p.className = "note";
  p.textContent = text;
  slotsEl.appendChild(p);
}
