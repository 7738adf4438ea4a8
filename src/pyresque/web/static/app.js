// pyresque dashboard: confirmations for destructive buttons and live regions.
// Live regions ([data-live] with an id) are refreshed by fetching the same page and
// swapping in the fresh copies: the server renders (and escapes) everything, once.
(() => {
  "use strict";

  document.addEventListener("submit", (event) => {
    const message = event.target.dataset ? event.target.dataset.confirm : "";
    if (message && !window.confirm(message)) event.preventDefault();
  });

  const regions = () => Array.from(document.querySelectorAll("[data-live][id]"));
  if (!regions().length) return;
  const status = document.getElementById("live-status");
  const toggle = document.getElementById("live-toggle");
  const stamp = document.getElementById("live-time");
  const every = Number(regions()[0].dataset.liveEvery || document.body.dataset.pollMs || 3000);
  let paused = window.localStorage.getItem("pyresque-live") === "off";
  let busy = false;
  let pressed = false; // never swap a region between a press and its click
  document.addEventListener("pointerdown", () => { pressed = true; }, true);
  document.addEventListener("pointerup", () => { window.setTimeout(() => { pressed = false; }, 0); }, true);

  const show = (state) => {
    status.hidden = false;
    status.className = "live " + (paused ? "paused" : state);
    toggle.textContent = paused ? "paused" : state === "offline" ? "offline" : "live";
    toggle.title = paused ? "Resume live updates" : "Pause live updates";
  };

  async function refresh() {
    if (paused || busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(window.location.href, {
        credentials: "same-origin",
        headers: { "X-Requested-With": "pyresque-live" },
      });
      if (!response.ok) throw new Error(String(response.status));
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of regions()) {
        const next = fresh.getElementById(region.id);
        // Never swap a region the user is interacting with.
        if (next && !pressed && !region.contains(document.activeElement)) {
          region.replaceWith(document.adoptNode(next));
        }
      }
      const badge = fresh.getElementById("nav-failed");
      const current = document.getElementById("nav-failed");
      if (badge && current) current.textContent = badge.textContent;
      stamp.textContent = new Date().toISOString().replace(/\.\d+Z$/, "Z"); // as every time shown
      show("");
    } catch (error) {
      show("offline");
    } finally {
      busy = false;
    }
  }

  toggle.addEventListener("click", () => {
    paused = !paused;
    window.localStorage.setItem("pyresque-live", paused ? "off" : "on");
    show("");
    if (!paused) refresh();
  });
  show(paused ? "paused" : "");
  window.setInterval(refresh, every);
})();
