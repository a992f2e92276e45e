// Tastemaker web app, shared behaviour (no inline scripts: the Content-Security-Policy forbids them).
// Forms with data-confirm ask first; a form that is submitting disables its buttons (no double submit).
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  const question = form.dataset.confirm;
  if (question && !window.confirm(question)) { event.preventDefault(); return; }
  if (!form.hasAttribute("hx-post")) {  // after the submitter's value is taken
    setTimeout(() => { for (const b of form.querySelectorAll("button[type=submit]")) b.disabled = true; }, 0);
  }
});
window.addEventListener("pageshow", () => {  // back to a page from the cache: its buttons work again
  for (const b of document.querySelectorAll("form button[type=submit]:disabled")) b.disabled = false;
});
// An error message swapped in by htmx is announced and focused, so keyboard and screen-reader users find it.
document.addEventListener("htmx:afterSwap", (event) => {
  const alert = event.detail.target.querySelector?.("[role=alert]");
  if (alert) { alert.tabIndex = -1; alert.focus(); }
});
