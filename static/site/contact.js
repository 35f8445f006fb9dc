// The contact form: posts to the studio's public contact endpoint (the
// form's data-api), with the honeypot field sent as typed.
import {api, show} from "./api.js";

const form = document.getElementById("contact");
const result = document.getElementById("result");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    name: form.name.value,
    email: form.email.value,
    phone: form.phone.value,
    message: form.message.value,
    website: form.website.value,
  };
  if (form.service && form.service.value) body.service = form.service.value;
  try {
    await api("POST", form.dataset.api, body);
    form.reset();
    show(result, "Thank you! We'll get back to you soon.", "ok");
  } catch (e) {
    show(result, e.message, "error");
  }
});
