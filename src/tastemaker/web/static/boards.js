// Boards pages. Progressive enhancement only: every form works without this file.
// - A dropzone takes dropped image files (and the files of dropped folders) into its file input, so the
//   plain form submission sends them; the status line says how many are chosen.
// - After htmx swaps a pin's card (saved, or an error), focus goes to its message, so keyboard and
//   screen-reader users hear what happened.
"use strict";

const MAX_WALK = 2000;  // files read from a dropped folder (the server refuses more than a board holds anyway)

function readAll(reader) {
  return new Promise((resolve) => {
    const out = [];
    const next = () => reader.readEntries((batch) => {
      if (!batch.length) { resolve(out); return; }
      out.push(...batch);
      next();
    }, () => resolve(out));
    next();
  });
}

async function filesOf(items) {
  const files = [];
  const walk = async (entry) => {
    if (files.length >= MAX_WALK || !entry) return;
    if (entry.isFile) {
      const file = await new Promise((resolve) => entry.file(resolve, () => resolve(null)));
      if (file) files.push(file);
    } else if (entry.isDirectory) {
      for (const child of await readAll(entry.createReader())) await walk(child);
    }
  };
  const entries = [...items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  for (const entry of entries) await walk(entry);
  return files;
}

function describe(input, status) {
  const n = input.files ? input.files.length : 0;
  status.textContent = n ? `${n} file${n === 1 ? "" : "s"} chosen.` : "";
}

function setUp(zone) {
  const input = zone.querySelector("input[type=file]");
  const status = zone.querySelector("[data-drop-status]");
  if (!input || !status || typeof DataTransfer === "undefined") return;
  for (const hint of zone.querySelectorAll(".drop-hint")) hint.hidden = false;
  input.addEventListener("change", () => describe(input, status));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const dt = event.dataTransfer;
    if (!dt) return;
    const hasEntries = dt.items && [...dt.items].some((i) => typeof i.webkitGetAsEntry === "function");
    const dropped = hasEntries ? await filesOf(dt.items) : [...dt.files];
    const merged = new DataTransfer();
    for (const f of input.files || []) merged.items.add(f);
    for (const f of dropped) if (!f.name.startsWith(".")) merged.items.add(f);
    input.files = merged.files;
    describe(input, status);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const zone of document.querySelectorAll("[data-dropzone]")) setUp(zone);
});

document.addEventListener("htmx:afterSettle", () => {
  const target = document.querySelector(".pin [data-focus]");
  if (target) {
    target.removeAttribute("data-focus");
    target.tabIndex = -1;
    target.focus();
  }
});
