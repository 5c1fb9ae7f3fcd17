// fiumatch web interface: the only script the pages load (no third-party code, no inline
// script; the content security policy is default-src 'self'). Every page works without it;
// it adds two conveniences: the progress of a running query updates itself, and after a
// failed form submission the error summary gets the keyboard focus.
"use strict";
(function () {
  document.documentElement.classList.add("js");

  function focusErrorSummary() {
    var summary = document.querySelector("[data-autofocus]");
    if (summary) {
      summary.focus();
    }
  }

  function pollProgress() {
    var section = document.getElementById("progress");
    if (!section || !section.getAttribute("data-poll")) {
      return;
    }
    var url = section.getAttribute("data-poll");
    var failures = 0;
    var timer = window.setInterval(function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          failures = 0;
          var holder = document.createElement("template");
          holder.innerHTML = html.trim();
          var fresh = holder.content.querySelector("#progress");
          if (!fresh) {
            return;
          }
          // Keep the live region element in place and swap its content, so screen readers
          // announce the change.
          section.innerHTML = fresh.innerHTML;
          section.setAttribute("data-running", fresh.getAttribute("data-running"));
          if (fresh.getAttribute("data-running") !== "true") {
            window.clearInterval(timer);
            window.location.reload();
          }
        })
        .catch(function () {
          failures += 1;
          if (failures >= 5) {
            window.clearInterval(timer);
          }
        });
    }, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    focusErrorSummary();
    pollProgress();
  });
})();
