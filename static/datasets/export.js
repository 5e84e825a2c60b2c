// The dataset export page: polls the export's JSON status and shows its progress, then the
// download link. Kept out of the template: the Content-Security-Policy forbids inline scripts.
(function () {
  "use strict";
  const box = document.getElementById("export-progress");
  if (!box) {
    return;
  }
  const url = box.dataset.statusUrl;
  const progress = box.querySelector("[data-progress]");
  const bar = box.querySelector("[data-progress-bar]");
  const message = box.querySelector("[data-progress-message]");
  const label = box.querySelector("[data-status-label]");
  const link = box.querySelector("[data-download-link]");
  const interval = Number(box.dataset.pollMs || 1000);

  function render(status) {
    const percent = Math.max(0, Math.min(100, Number(status.percent) || 0));
    progress.setAttribute("aria-valuenow", String(percent));
    bar.style.width = percent + "%";
    bar.textContent = percent + "%";
    message.textContent = status.message;
    label.textContent = status.status_label;
    box.dataset.status = status.status;
    if (status.finished) {
      bar.classList.remove("progress-bar-striped", "progress-bar-animated");
      bar.classList.toggle("bg-danger", status.status === "failed");
      box.dataset.finished = "true";
    }
    if (status.download_url) {
      link.href = status.download_url;
      link.classList.remove("d-none");
    } else {
      link.classList.add("d-none");
    }
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then(function (status) {
        render(status);
        if (!status.finished) {
          window.setTimeout(poll, interval);
        }
      })
      .catch(function () {
        window.setTimeout(poll, interval * 3);
      });
  }

  if (box.dataset.finished !== "true") {
    poll();
  }
})();
