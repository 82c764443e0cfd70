/* Relance back office: the few behaviours htmx does not cover.
   Loaded as a file (the CSP forbids inline scripts); delegated on document so it keeps
   working after hx-boost swaps the body. */
(function () {
  "use strict";

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http (the demo): fall back to a selection and the legacy command.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "sr-only";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) { return; }
    var label = button.textContent;
    copyText(source.value || source.textContent).then(function () {
      button.textContent = button.getAttribute("data-copied") || "Copied";
      button.classList.add("is-copied");
    }, function () {
      source.select && source.select();
      button.textContent = "Press Ctrl+C";
    });
    window.setTimeout(function () {
      button.textContent = label;
      button.classList.remove("is-copied");
    }, 2000);
  });

  // A mail's frame (same origin, nothing runs inside it) takes the mail's whole height, so
  // the page scrolls rather than a box in it.
  function fitFrame(frame) {
    var doc;
    try { doc = frame.contentDocument; } catch (e) { return; }
    if (!doc || !doc.documentElement || !doc.body) { return; }
    var root = doc.documentElement;
    var sideways = root.scrollWidth > root.clientWidth ? 20 : 0;
    var height = Math.max(root.getBoundingClientRect().height, doc.body.scrollHeight);
    frame.style.height = Math.ceil(height) + sideways + "px";
  }
  function fitFrames() {
    document.querySelectorAll("iframe[data-fit-content]").forEach(fitFrame);
  }
  document.addEventListener("load", function (event) {
    if (event.target.matches && event.target.matches("iframe[data-fit-content]")) {
      fitFrame(event.target);
    }
  }, true);
  document.addEventListener("DOMContentLoaded", fitFrames);
  document.addEventListener("htmx:load", fitFrames);
  window.addEventListener("resize", fitFrames);

  document.addEventListener("change", function (event) {
    var all = event.target.closest("[data-select-all]");
    if (!all) { return; }
    var name = all.getAttribute("data-select-all");
    document.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (box) {
      box.checked = all.checked;
    });
  });
})();
