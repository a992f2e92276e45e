// Verify page: drag-and-drop onto the drop zone (the plain file input works without this script).
// A dropped image is put into the file input and the form is sent; a chosen file's name is shown.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form.verify-form")) {
    const zone = form.querySelector(".dropzone");
    const input = form.querySelector("input[type=file]");
    const chosen = form.querySelector(".verify-chosen");
    if (!zone || !input) continue;
    const show = () => {
      const file = input.files && input.files[0];
      if (chosen) chosen.textContent = file ? `Chosen: ${file.name} (${Math.ceil(file.size / 1024)} KB)` : "";
    };
    input.addEventListener("change", show);
    for (const type of ["dragenter", "dragover"]) {
      zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("over"); });
    }
    for (const type of ["dragleave", "dragend"]) {
      zone.addEventListener(type, () => zone.classList.remove("over"));
    }
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (!files || !files.length) return;
      const transfer = new DataTransfer();
      transfer.items.add(files[0]);
      input.files = transfer.files;
      show();
      form.requestSubmit();
    });
  }
});
