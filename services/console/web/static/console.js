// orders console: small enhancements; every page works without them.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Time travel: the slider mirrors the version field and shows that version when released.
  for (const range of document.querySelectorAll("input[type=range][data-mirror]")) {
    const field = document.getElementById(range.dataset.mirror);
    range.addEventListener("input", () => { field.value = range.value; });
    range.addEventListener("change", () => { field.value = range.value; range.form.requestSubmit(); });
    field.addEventListener("input", () => { range.value = field.value; });
  }
  // A running job: refresh its progress every second; reload the page once it has finished.
  const job = document.getElementById("job");
  if (job && job.dataset.running === "true") {
    const tick = async () => {
      try {
        const res = await fetch("/jobs/" + job.dataset.job + "/progress", { headers: { Accept: "application/json" } });
        if (!res.ok) { return; }
        const j = await res.json();
        if (!j.running) { location.reload(); return; }
        document.getElementById("job-phase").textContent = j.phase;
        const bar = document.getElementById("job-progress");
        bar.value = j.percent; bar.textContent = j.percent + "%";
        document.getElementById("job-rate").textContent = j.done + " of " + j.total + " · " + Math.round(j.per_second) +
          " per second" + (j.eta ? " · " + j.eta + " left" : "");
        const list = document.getElementById("job-messages");
        list.replaceChildren(...j.messages.map((m) => { const li = document.createElement("li"); li.textContent = m; return li; }));
      } catch (e) { /* the next tick tries again */ }
      setTimeout(tick, 1000);
    };
    setTimeout(tick, 1000);
  }
});
