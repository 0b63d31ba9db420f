// ebpm hub: instant search and filters on the explore page, the copy button on package pages.
// Without JavaScript the pages are plain lists and tables: the controls stay hidden.
"use strict";
(function () {
  function explore() {
    var form = document.getElementById("filters");
    var list = document.getElementById("packages");
    if (!form || !list) return;
    var q = document.getElementById("q"), type = document.getElementById("type");
    var license = document.getElementById("license"), signed = document.getElementById("signed");
    var count = document.getElementById("count"), nomatch = document.getElementById("nomatch");
    var cards = Array.prototype.slice.call(list.children);
    var total = cards.length;
    form.hidden = false;
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    var params = new URLSearchParams(window.location.search);
    if (params.get("q")) q.value = params.get("q");
    function apply() {
      var words = q.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      cards.forEach(function (card) {
        var text = card.getAttribute("data-search");
        var ok = words.every(function (w) { return text.indexOf(w) !== -1; });
        if (ok && type.value) ok = (" " + card.getAttribute("data-types") + " ").indexOf(" " + type.value + " ") !== -1;
        if (ok && license.value) ok = card.getAttribute("data-license") === license.value;
        if (ok && signed.checked) ok = card.getAttribute("data-signed") === "yes";
        card.hidden = !ok;
        if (ok) shown++;
      });
      count.textContent = shown === total ? total + " packages" : shown + " of " + total + " packages";
      nomatch.hidden = shown !== 0;
    }
    [q, type, license, signed].forEach(function (el) {
      el.addEventListener("input", apply);
      el.addEventListener("change", apply);
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "/" && document.activeElement !== q && !/INPUT|SELECT|TEXTAREA/.test(document.activeElement.tagName)) {
        e.preventDefault();
        q.focus();
      }
    });
    apply();
  }
  function copyButtons() {
    var status = document.getElementById("copied");
    Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        var text = source.textContent;
        function done(ok) { if (status) status.textContent = ok ? "Copied: " + text : "Select the command and copy it."; }
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(function () { done(true); }, function () { done(false); });
        } else {
          var range = document.createRange();
          range.selectNodeContents(source);
          var sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
          var ok = false;
          try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
          done(ok);
        }
      });
    });
  }
  explore();
  copyButtons();
})();
