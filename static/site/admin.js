// The admin's studio switcher submits as soon as another studio is chosen
// (the policy allows no inline onchange handler, hence this module).
const form = document.getElementById("switch-studio");
if (form) {
  const select = form.querySelector("select");
  select.addEventListener("change", () => form.submit());
  // With scripts running, the fallback button is not needed.
  form.querySelector(".switch-button")?.setAttribute("hidden", "");
}
