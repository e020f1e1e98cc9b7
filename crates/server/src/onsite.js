// Lifecycle on-site messages. Embed in a page:
//   <script src="https://LIFECYCLE/onsite.js" data-key="pk_..." data-customer="CUSTOMER_ID"></script>
// Shows the customer's active on-site messages (banners, pop-ups) as a
// stack at the bottom of the page, each with a close button that dismisses it.
(function () {
  var me = document.currentScript;
  if (!me) return;
  var key = me.getAttribute("data-key");
  var customer = me.getAttribute("data-customer");
  if (!key || !customer) return;
  var base = new URL(me.src).origin;
  var who = encodeURIComponent(customer);
  fetch(base + "/api/v1/customers/" + who + "/messages?key=" + encodeURIComponent(key))
    .then(function (r) { return r.ok ? r.json() : { messages: [] }; })
    .then(function (body) {
      (body.messages || []).forEach(function (m) {
        var box = document.createElement("div");
        box.setAttribute("data-lifecycle-message", m.key);
        box.style.cssText = "position:fixed;left:1em;right:1em;bottom:1em;z-index:2147483647;" +
          "background:#fff;border:1px solid #ccc;border-radius:6px;padding:1em 2.5em 1em 1em;" +
          "box-shadow:0 2px 12px rgba(0,0,0,.2);font-family:sans-serif";
        box.innerHTML = m.html;
        var close = document.createElement("button");
        close.textContent = "\u00d7";
        close.setAttribute("aria-label", "Close");
        close.style.cssText = "position:absolute;top:.3em;right:.5em;border:0;background:none;font-size:1.4em;cursor:pointer";
        close.onclick = function () {
          box.remove();
          fetch(base + "/api/v1/customers/" + who + "/messages/" + encodeURIComponent(m.key) +
            "/dismiss?key=" + encodeURIComponent(key), { method: "POST" });
        };
        box.appendChild(close);
        document.body.appendChild(box);
      });
    })
    .catch(function () {});
})();
