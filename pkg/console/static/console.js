// inlet console: small enhancements of pages that work without script.
// Copy buttons, and confirmation before destructive actions.
(function () {
  "use strict";

  function copyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (btn) {
      if (!navigator.clipboard) {
        return;
      }
      btn.hidden = false;
      btn.addEventListener("click", function () {
        var el = document.getElementById(btn.getAttribute("data-copy"));
        if (!el) {
          return;
        }
        var text = "value" in el ? el.value : el.textContent;
        var label = btn.textContent;
        navigator.clipboard.writeText(text).then(function () {
          btn.textContent = "Copied";
          setTimeout(function () { btn.textContent = label; }, 1500);
        }, function () {
          if (el.select) {
            el.select();
          }
          btn.textContent = "Press Ctrl+C";
        });
      });
    });
  }

  // A form with data-confirm asks first; the page it would otherwise go
  // to without script asks the same.
  function confirmations(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.getAttribute("data-confirm"))) {
          ev.preventDefault();
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    copyButtons(document);
    confirmations(document);
  });
})();
