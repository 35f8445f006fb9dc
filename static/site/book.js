// The booking page: pick a session, a day and a free time, then hold it and
// confirm (or pay the deposit). The API base and the studio's zone come from
// the form's data- attributes.
import {api, show, slotNote} from "./api.js";

const form = document.getElementById("book");
const slotsEl = document.getElementById("slots");
const msg = document.getElementById("message");
const base = form.dataset.api;
const tz = form.dataset.timezone;
let chosen = null;

const tomorrow = new Date();
tomorrow.setDate(tomorrow.getDate() + 1);
document.getElementById("date").valueAsDate = tomorrow;

async function loadSlots() {
  const day = form.date.value;
  if (!day) return;
  chosen = null;
  slotNote(slotsEl, "Loading…");
  try {
    const slots = await api("GET", base + "services/" + form.service.value + "/slots/?start=" + day + "&end=" + day);
    if (slots.length) slotsEl.textContent = "";
    else slotNote(slotsEl, "No free times that day. Try another date.");
    for (const slot of slots) {
      const b = document.createElement("button");
      b.type = "button";
      b.setAttribute("aria-pressed", "false");
      b.textContent = new Date(slot.start).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", timeZone: tz});
      b.addEventListener("click", () => {
        slotsEl.querySelectorAll("button").forEach((x) => x.setAttribute("aria-pressed", "false"));
        b.setAttribute("aria-pressed", "true");
        chosen = slot.start;
      });
      slotsEl.appendChild(b);
    }
  } catch (e) {
    slotNote(slotsEl, e.message);
  }
}

form.service.addEventListener("change", loadSlots);
form.date.addEventListener("change", loadSlots);
loadSlots();

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!chosen) {
    show(msg, "Pick a time first.", "error");
    return;
  }
  try {
    const held = await api("POST", base + "holds/", {
      service: form.service.value,
      start: chosen,
      name: form.name.value,
      email: form.email.value,
      phone: form.phone.value,
    });
    const next = held.booking.next_step;
    const manage = "/api/v1/public/bookings/" + held.token + "/";
    if (next === "confirm") {
      await api("POST", manage + "confirm/");
    } else {
      const b = await api("POST", manage + "checkout/");
      if (b.checkout_url) {
        window.location = b.checkout_url;
        return;
      }
    }
    window.location = held.manage_url;
  } catch (e) {
    show(msg, e.message, "error");
    loadSlots();
  }
});
