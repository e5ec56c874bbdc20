// The serial log's filter (plain text, or /regex/ with flags), and every transcript opened for
// printing. The page works without it: everything is in the markup.
(function () {
  "use strict";
  var input = document.getElementById("filter");
  var count = document.getElementById("filter-count");
  var lines = Array.prototype.slice.call(document.querySelectorAll("#serial-log .l"));
  function matcher(q) {
    var m = /^\/(.+)\/([a-z]*)$/.exec(q);
    if (m) {
      try { var re = new RegExp(m[1], m[2]); return function (t) { return re.test(t); }; }
      catch (e) { return null; }
    }
    var lower = q.toLowerCase();
    return function (t) { return t.toLowerCase().indexOf(lower) !== -1; };
  }
  function apply() {
    var q = input.value;
    var test = q ? matcher(q) : null;
    input.setCustomValidity(q && !test ? "not a valid regular expression" : "");
    var shown = 0;
    lines.forEach(function (l) {
      var keep = !test || test(l.textContent);
      l.classList.toggle("hidden", !keep);
      if (keep) { shown++; }
    });
    count.textContent = q ? shown + " of " + lines.length + " lines" : lines.length + " lines";
  }
  if (input) { input.addEventListener("input", apply); apply(); }
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
}());
