/* Customer portal: selection of invoices for a grouped answer, and the answer panel.
   Loaded as an external file (the Content-Security-Policy forbids inline scripts).
   Everything works without it; it only adds comfort. */
(function () {
  "use strict";

  function selected(form) {
    return form ? form.querySelectorAll("input.select-item:checked").length : 0;
  }

  function refreshBulk(form) {
    if (!form) return;
    var count = selected(form);
    var button = form.querySelector(".bulk-answer");
    if (button) button.disabled = count === 0;
    var all = form.querySelector("input.select-all");
    var boxes = form.querySelectorAll("input.select-item");
    if (all) {
      all.checked = boxes.length > 0 && count === boxes.length;
      all.indeterminate = count > 0 && count < boxes.length;
    }
    form.querySelectorAll("tbody tr").forEach(function (row) {
      var box = row.querySelector("input.select-item");
      row.classList.toggle("row-selected", !!(box && box.checked));
    });
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!(target instanceof HTMLInputElement)) return;
    var form = target.closest("form.bulk-form");
    if (target.classList.contains("select-all") && form) {
      form.querySelectorAll("input.select-item").forEach(function (box) {
        box.checked = target.checked;
      });
    }
    if (form) refreshBulk(form);
  });

  document.addEventListener("click", function (event) {
    var close = event.target instanceof Element && event.target.closest(".answer-close");
    var panel = close && close.closest("#answer-panel");
    if (!panel || !document.getElementById("statement-items")) return;
    event.preventDefault();
    panel.innerHTML = "";
  });

  function settle(root) {
    refreshBulk(document.querySelector("form.bulk-form"));
    var heading = root && root.id === "answer-panel" && root.querySelector("h2, [role=status]");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: true });
    }
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    settle(event.detail && event.detail.target);
  });
  document.addEventListener("DOMContentLoaded", function () {
    settle(null);
  });
})();
