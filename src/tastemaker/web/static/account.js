// Account page. An export downloads a file and leaves the page where it is, so its button (disabled by
// app.js against double submits) comes back after a moment. The delete button waits for the typed name.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form.download-form")) {
    form.addEventListener("submit", () => {
      setTimeout(() => { for (const b of form.querySelectorAll("button[type=submit]")) b.disabled = false; }, 3000);
    });
  }
  const name = document.getElementById("confirm-name");
  const form = document.getElementById("delete-form");
  if (name && form) {
    const button = form.querySelector("button[type=submit]");
    const sync = () => { button.disabled = name.value.trim() !== name.dataset.expect; };
    name.addEventListener("input", sync);
    window.addEventListener("pageshow", sync);  // after app.js re-enables buttons on pageshow
    sync();
  }
});
