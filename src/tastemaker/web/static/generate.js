// Tastemaker web app: the generate form (selfie from the camera, size check, preview) and the job page (live
// progress from server-sent events). Without JavaScript the form's file input and the job page's Reload link
// do the same work. No inline scripts: the Content-Security-Policy forbids them.
"use strict";

(() => {
  // ---------------------------------------------------------------- the form: selfie file, preview, camera
  const input = document.getElementById("selfie");
  if (input) {
    const preview = document.getElementById("selfie-preview");
    const tooBig = document.getElementById("selfie-client-error");
    const maxBytes = Number(input.dataset.maxBytes || 0);
    let previewUrl = null;

    const showPreview = () => {
      const file = input.files && input.files[0];
      if (previewUrl) { URL.revokeObjectURL(previewUrl); previewUrl = null; }
      tooBig.hidden = true;
      input.removeAttribute("aria-invalid");
      if (!file) { preview.hidden = true; return; }
      if (maxBytes && file.size > maxBytes) {
        tooBig.textContent = `That file is ${(file.size / 1e6).toFixed(1)} MB; the limit is ` +
          `${(maxBytes / 1e6).toFixed(0)} MB. Choose a smaller photo.`;
        tooBig.hidden = false;
        input.setAttribute("aria-invalid", "true");
      }
      previewUrl = URL.createObjectURL(file);  // blob: stays in this page; nothing is uploaded until Generate
      preview.src = previewUrl;
      preview.hidden = false;
    };
    input.addEventListener("change", showPreview);
    input.form.addEventListener("submit", (event) => {
      const file = input.files && input.files[0];
      if (file && maxBytes && file.size > maxBytes) { event.preventDefault(); event.stopImmediatePropagation(); tooBig.focus(); }
    }, true);

    const camera = document.getElementById("camera");
    const media = navigator.mediaDevices;
    if (camera && media && typeof media.getUserMedia === "function" && typeof DataTransfer === "function") {
      camera.hidden = false;
      const video = document.getElementById("camera-video");
      const start = document.getElementById("camera-start");
      const capture = document.getElementById("camera-capture");
      const stop = document.getElementById("camera-stop");
      const status = document.getElementById("camera-status");
      let stream = null;

      const close = () => {
        if (stream) { for (const track of stream.getTracks()) track.stop(); stream = null; }
        video.srcObject = null;
        video.hidden = capture.hidden = stop.hidden = true;
        start.hidden = false;
      };
      start.addEventListener("click", async () => {
        status.textContent = "Asking for the camera…";
        try {
          stream = await media.getUserMedia({ video: { facingMode: "user", width: { ideal: 1280 } }, audio: false });
        } catch (err) {
          status.textContent = "The camera is not available (" + (err && err.name ? err.name : "refused") +
            "); choose a photo file instead.";
          return;
        }
        video.srcObject = stream;
        video.hidden = capture.hidden = stop.hidden = false;
        start.hidden = true;
        status.textContent = "Camera on. Face it in good light, then press Capture.";
        capture.focus();
      });
      capture.addEventListener("click", () => {
        const w = video.videoWidth, h = video.videoHeight;
        if (!w || !h) { status.textContent = "The camera has no picture yet; try again in a moment."; return; }
        const canvas = document.createElement("canvas");
        canvas.width = w; canvas.height = h;
        canvas.getContext("2d").drawImage(video, 0, 0, w, h);
        canvas.toBlob((blob) => {
          if (!blob) { status.textContent = "Could not take the picture; choose a photo file instead."; return; }
          const files = new DataTransfer();
          files.items.add(new File([blob], "camera-selfie.jpg", { type: "image/jpeg" }));
          input.files = files.files;
          close();
          showPreview();
          status.textContent = "Photo taken: it is in the selfie field (shown below). Take another or press Generate.";
        }, "image/jpeg", 0.92);
      });
      stop.addEventListener("click", () => { close(); status.textContent = "Camera closed."; start.focus(); });
      window.addEventListener("pagehide", close);
    }
  }

  // ---------------------------------------------------------------- the form: where the taste comes from
  // Without JavaScript both parts show and the server uses the chosen radio; with it, only the chosen part
  // shows and the other's controls are disabled (not sent, not required).
  const sourceBox = document.getElementById("taste-source");
  if (sourceBox) {
    const main = { board: document.getElementById("board_id"), export: document.getElementById("export") };
    const apply = () => {
      const checked = sourceBox.querySelector('input[name="source"]:checked');
      const chosen = checked ? checked.value : "board";
      for (const part of sourceBox.querySelectorAll(".source-part")) {
        const active = part.dataset.source === chosen;
        part.hidden = !active;
        for (const el of part.querySelectorAll("input, select, textarea")) el.disabled = !active;
      }
      for (const [name, el] of Object.entries(main)) if (el) el.required = name === chosen;
    };
    for (const radio of sourceBox.querySelectorAll('input[name="source"]')) radio.addEventListener("change", apply);
    apply();
  }

  // A chosen export file: its size checked here, and its modes suggested for the mode field (read in this
  // page only; the server verifies the file and the mode when the form is sent).
  const exportInput = document.getElementById("export");
  if (exportInput) {
    const list = document.getElementById("export-modes");
    const help = document.getElementById("export_mode-help");
    const tooBig = document.getElementById("export-client-error");
    const helpWords = help.textContent;
    const maxBytes = Number(exportInput.dataset.maxBytes || 0);
    const oversized = () => {
      const file = exportInput.files && exportInput.files[0];
      return Boolean(file && maxBytes && file.size > maxBytes);
    };
    exportInput.addEventListener("change", async () => {
      list.replaceChildren();
      help.textContent = helpWords;
      tooBig.hidden = true;
      exportInput.removeAttribute("aria-invalid");
      const file = exportInput.files && exportInput.files[0];
      if (!file) return;
      if (oversized()) {
        tooBig.textContent = `That file is ${(file.size / 1e6).toFixed(1)} MB; a taste export is far smaller ` +
          `(the limit is ${(maxBytes / 1048576).toFixed(0)} MB).`;
        tooBig.hidden = false;
        exportInput.setAttribute("aria-invalid", "true");
        return;
      }
      try {
        const doc = JSON.parse(await file.text());
        const modes = doc && doc.profile && Array.isArray(doc.profile.modes) ? doc.profile.modes : [];
        const total = modes.reduce((sum, m) => sum + (Number(m.weight) || 0), 0) || 1;
        for (const m of modes) {
          const option = document.createElement("option");
          option.value = String(m.id);
          option.label = `${m.name} (${Math.round((100 * (Number(m.weight) || 0)) / total)}%)`;
          list.append(option);
        }
        if (modes.length) {
          help.textContent = `This file's looks: ${modes.map((m) => `${m.id} (${m.name})`).join(", ")}. ` +
            "Type one, or leave it empty to let the profile choose; checked against the file when you press Generate.";
        }
      } catch (err) {
        // not JSON: the server says so next to the file field when the form is sent
      }
    });
    exportInput.form.addEventListener("submit", (event) => {
      if (!exportInput.disabled && oversized()) {
        event.preventDefault(); event.stopImmediatePropagation(); tooBig.focus();
      }
    }, true);
  }

  // ---------------------------------------------------------------- the job page: live progress
  const job = document.getElementById("job");
  if (job && job.dataset.events && typeof EventSource === "function") {
    const source = new EventSource(job.dataset.events);
    const update = (data) => {
      const bar = document.getElementById("job-progress");
      const stage = document.getElementById("job-stage");
      if (bar) { bar.value = data.fraction; bar.textContent = Math.round(data.fraction * 100) + "%"; }
      if (stage) stage.textContent = data.words;
      const state = document.getElementById("job-status");
      if (state) state.textContent = data.status === "queued" ? "Queued" : "Running";
    };
    const finish = async () => {
      source.close();
      // The server renders the finished job (images, reactions, errors); swap it in without a reload.
      try {
        const resp = await fetch(window.location.pathname, { headers: { Accept: "text/html" }, credentials: "same-origin" });
        const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
        const fresh = doc.getElementById("job");
        if (!fresh) throw new Error("no job section");
        job.replaceWith(fresh);
        if (window.htmx) window.htmx.process(fresh);
        const state = document.getElementById("job-status");
        if (state) { state.tabIndex = -1; state.focus(); }
      } catch (err) {
        window.location.reload();
      }
    };
    source.addEventListener("progress", (event) => update(JSON.parse(event.data)));
    for (const name of ["succeeded", "failed", "cancelled"]) source.addEventListener(name, finish);
  }
})();
