// Keeps the overview's figures current: every 5 seconds it asks the server
// for them (the session cookie goes along) and writes them into the
// elements marked data-live / data-segment. Without it the page is the same,
// only as of its loading.
(function () {
  "use strict";
  function update(v) {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var key = el.getAttribute("data-live");
      if (key in v) { el.textContent = v[key]; }
    });
    (v.segments || []).forEach(function (s) {
      var el = document.querySelector('[data-segment="' + CSS.escape(s.segment) + '"]');
      if (el) { el.textContent = s.customers + " customers · " + s.revenue_text; }
    });
  }
  function poll() {
    fetch("/app/overview.json", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (v) { if (v) { update(v); } })
      .catch(function () {});
  }
  setInterval(poll, 5000);
})();
