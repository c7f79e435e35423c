// ratekeeper dashboard: refresh the overview's chart every few seconds.
// The server renders the chart (SVG and its numbers); this only fetches it again.
(function () {
  "use strict";
  var box = document.getElementById("rate");
  if (!box || !window.fetch) {
    return;
  }
  var url = box.getAttribute("data-refresh");
  var every = Number(box.getAttribute("data-every") || "5") * 1000;
  var timer = window.setInterval(refresh, every);

  function stop(message) {
    window.clearInterval(timer);
    var note = document.createElement("p");
    note.className = "alert";
    note.setAttribute("role", "status");
    note.textContent = message;
    box.appendChild(note);
  }

  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.headers.get("X-Ratekeeper-Login")) {
          stop("Your session has ended: reload the page to log in again.");
          return null;
        }
        if (!response.ok) {
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        var open = box.querySelector("details[open]") !== null;
        box.innerHTML = html;
        if (open) {
          var details = box.querySelector("details");
          if (details) {
            details.open = true;
          }
        }
        box.setAttribute("data-updated", String(Date.now()));
      })
      .catch(function () {
        // the service is restarting or the network is down: try again next time
      });
  }
})();
