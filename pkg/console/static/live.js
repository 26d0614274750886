// inlet console: the audit log follows new requests without a reload.
// The page works without it; this only adds the rows the server streams
// (Server-Sent Events) at the top of the table.
(function () {
  "use strict";

  // At most this many rows stay in the table; older ones are a page away.
  var maxRows = 200;

  function follow(table) {
    var tbody = table.tBodies[0];
    var status = document.getElementById("live-status");
    var say = function (text) {
      if (status && status.textContent !== text) {
        status.textContent = text;
      }
    };
    var source = new EventSource(table.getAttribute("data-stream"));
    source.addEventListener("open", function () {
      say("Live: new requests appear at the top as they arrive.");
    });
    source.addEventListener("error", function () {
      say(source.readyState === EventSource.CLOSED ?
        "Live updates stopped: reload the page to see new requests." :
        "Live updates paused: reconnecting…");
    });
    source.addEventListener("audit", function (ev) {
      // The row is HTML the server rendered with its own templates.
      var tpl = document.createElement("template");
      tpl.innerHTML = ev.data.trim();
      var row = tpl.content.firstElementChild;
      if (!row || document.getElementById(row.id)) {
        return;
      }
      tbody.querySelectorAll("tr.empty").forEach(function (r) { r.remove(); });
      row.classList.add("fresh");
      tbody.insertBefore(row, tbody.firstChild);
      while (tbody.rows.length > maxRows) {
        tbody.deleteRow(-1);
      }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.EventSource) {
      return;
    }
    document.querySelectorAll("table[data-stream]").forEach(follow);
  });
})();
