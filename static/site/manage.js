// Managing a booking from its emailed link: details, deposit instructions,
// cancel and reschedule. Everything is shown in the studio's zone; the URLs
// and the zone come from the page's json_script data.
import {api, show, slotNote} from "./api.js";

const page = JSON.parse(document.getElementById("page-data").textContent);
const url = page.booking_url;
const slotsUrl = page.slots_url;
const tz = page.timezone;
const details = document.getElementById("details");
const actions = document.getElementById("actions");
const msg = document.getElementById("message");
const deposit = document.getElementById("deposit");
const dateEl = document.getElementById("new-date");
const slotsEl = document.getElementById("slots");

// Intl refuses dateStyle/timeStyle together with timeZoneName (Chromium
// throws "Invalid option"), so times that name their zone spell out fields.
const TIME_WITH_ZONE = {hour: "2-digit", minute: "2-digit", timeZoneName: "short"};
const FULL_WITH_ZONE = {weekday: "long", year: "numeric", month: "long", day: "numeric", ...TIME_WITH_ZONE};
const fmt = (iso, opts) => new Intl.DateTimeFormat([], {timeZone: tz, ...opts}).format(new Date(iso));
const localDate = (iso) =>
  new Intl.DateTimeFormat("en-CA", {timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit"}).format(new Date(iso));

function render(b) {
  const when = fmt(b.starts_at, {dateStyle: "full", timeStyle: "short"}) + " – " + fmt(b.ends_at, TIME_WITH_ZONE);
  details.textContent = "";
  const h = document.createElement("h2");
  h.textContent = b.service.name;
  details.appendChild(h);
  const p = document.createElement("p");
  p.id = "when";
  p.textContent = when;
  details.appendChild(p);
  const s = document.createElement("p");
  s.id = "status";
  s.textContent = "Status: " + b.status.replace("_", " ");
  details.appendChild(s);
  deposit.hidden = true;
  if (b.next_step === "pay") {
    if (b.checkout_url) {
      const a = document.createElement("a");
      a.href = b.checkout_url;
      a.textContent = "Pay the deposit";
      details.appendChild(a);
    } else {
      deposit.hidden = false;
      let text = "Deposit to pay: " + b.deposit_amount + " " + b.service.currency + ". The studio confirms your booking once it is received.";
      if (b.hold_expires_at) text += " Your time is held until " + fmt(b.hold_expires_at, FULL_WITH_ZONE) + ".";
      document.getElementById("deposit-amount").textContent = text;
    }
  }
  actions.hidden = !["confirmed", "held", "awaiting_payment"].includes(b.status);
  if (!dateEl.value) dateEl.value = localDate(b.starts_at);
}

async function loadSlots() {
  const day = dateEl.value;
  if (!day) return;
  slotNote(slotsEl, "Loading free times…");
  try {
    const slots = await api("GET", slotsUrl + "?start=" + day + "&end=" + day);
    if (!slots.length) {
      slotNote(slotsEl, "No free times that day. Try another date.");
      return;
    }
    slotsEl.textContent = "";
    for (const slot of slots) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = fmt(slot.start, {hour: "2-digit", minute: "2-digit"});
      button.addEventListener("click", () => reschedule(slot.start));
      slotsEl.appendChild(button);
    }
  } catch (e) {
    slotNote(slotsEl, e.message);
  }
}

async function reschedule(start) {
  if (!confirm("Move your booking to " + fmt(start, FULL_WITH_ZONE) + "?")) return;
  try {
    render(await api("POST", url + "reschedule/", {start}));
    show(msg, "Moved.", "ok");
    loadSlots();
  } catch (e) {
    show(msg, e.message + " Here are the free times that day:", "error");
    loadSlots();
  }
}

api("GET", url)
  .then((b) => {
    render(b);
    loadSlots();
  })
  .catch((e) => {
    details.textContent = e.message;
  });
dateEl.addEventListener("change", loadSlots);
document.getElementById("cancel").addEventListener("click", async () => {
  if (!confirm("Cancel this booking?")) return;
  try {
    render(await api("POST", url + "cancel/", {}));
    show(msg, "Cancelled.", "ok");
  } catch (e) {
    show(msg, e.message, "error");
  }
});
