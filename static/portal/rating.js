// The 5-star control: a labelled radio group (fieldset + legend), so screen
// readers announce "Rating for IMG_0001.jpg, 3 stars, radio, 3 of 5". Clicking
// the checked star again clears the rating (as does the 0 key).

let serial = 0;

export function ratingControl(label, stars, { disabled = false } = {}) {
  const fieldset = document.createElement("fieldset");
  fieldset.className = "stars";
  fieldset.dataset.stars = String(stars || 0);
  const legend = document.createElement("legend");
  legend.className = "visually-hidden";
  legend.textContent = `Rating for ${label}`;
  fieldset.append(legend);
  const name = `stars-${++serial}`;
  for (let value = 1; value <= 5; value++) {
    const input = document.createElement("input");
    input.type = "radio";
    input.name = name;
    input.value = String(value);
    input.id = `${name}-${value}`;
    input.className = "visually-hidden star-input";
    input.checked = stars === value;
    input.disabled = disabled;
    const labelEl = document.createElement("label");
    labelEl.htmlFor = input.id;
    labelEl.className = "star";
    labelEl.title = `${value} star${value > 1 ? "s" : ""}`;
    const text = document.createElement("span");
    text.className = "visually-hidden";
    text.textContent = labelEl.title;
    labelEl.append(text);
    fieldset.append(input, labelEl);
  }
  return fieldset;
}

export function setRating(fieldset, stars, { disabled } = {}) {
  fieldset.dataset.stars = String(stars || 0);
  for (const input of fieldset.querySelectorAll("input")) {
    input.checked = Number(input.value) === stars;
    if (disabled !== undefined) input.disabled = disabled;
  }
}

/** Calls onRate(stars or null) for changes made in any control under root. */
export function bindRatings(root, onRate) {
  // A click on the star that is already checked clears; pointer clicks on a
  // label land on its input, keyboard changes come as "change" alone.
  let before = null;
  root.addEventListener("pointerdown", (event) => {
    const label = event.target.closest("label.star");
    if (!label) return;
    const fieldset = label.closest(".stars");
    before = fieldset ? Number(fieldset.dataset.stars) : null;
  });
  root.addEventListener("click", (event) => {
    const input = event.target.closest("input.star-input");
    if (!input || input.disabled) return;
    const fieldset = input.closest(".stars");
    const value = Number(input.value);
    if (before === value) {
      before = null;
      event.preventDefault();
      onRate(fieldset, null);
    }
  });
  root.addEventListener("change", (event) => {
    const input = event.target.closest("input.star-input");
    if (!input) return;
    before = null;
    onRate(input.closest(".stars"), Number(input.value));
  });
}
