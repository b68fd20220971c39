/// The console's one stylesheet and one script, compiled into the executable (no CDN, no build step).
enum ConsoleAssets {
    static let stylesheet = """
        :root { --ink: #1a1d21; --muted: #555c66; --line: #c9ced6; --bg: #f6f7f9; --card: #fff; --accent: #0b57d0;
          --ok: #146c2e; --warn: #8a4b00; --bad: #b3261e; --focus: #ffbf47; color-scheme: light; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
          color: var(--ink); background: var(--bg); }
        a { color: var(--accent); }
        a:focus-visible, button:focus-visible, input:focus-visible, select:focus-visible, textarea:focus-visible,
        summary:focus-visible, main:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
        .skip { position: absolute; left: -9999px; } .skip:focus { left: 8px; top: 8px; background: #fff; padding: 4px; }
        header.top { display: flex; gap: 24px; align-items: center; padding: 8px 24px; background: #14213d; color: #fff; }
        header.top .brand { font-weight: 700; letter-spacing: .04em; }
        header.top nav ul { display: flex; gap: 16px; list-style: none; margin: 0; padding: 0; align-items: center; }
        header.top a { color: #fff; text-decoration: none; padding: 4px 2px; }
        header.top a[aria-current] { border-bottom: 3px solid var(--focus); }
        header.top .who { margin-left: auto; display: flex; gap: 8px; align-items: center; color: #dfe6f3; }
        header.top .who form { margin: 0; }
        header.top button.link { background: none; border: 1px solid #dfe6f3; color: #fff; padding: 2px 8px; }
        main { padding: 16px 24px 48px; max-width: 1280px; }
        h1 { font-size: 1.5rem; margin: 8px 0 16px; } h2 { font-size: 1.15rem; margin: 0 0 8px; }
        code, pre { font-family: "DejaVu Sans Mono", ui-monospace, monospace; font-size: .9em; }
        table { border-collapse: collapse; width: 100%; background: var(--card); }
        th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
        thead th { background: #e9ecf1; }
        .fields th { width: 11em; font-weight: 600; }
        .muted { color: var(--muted); }
        .card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 16px; margin: 16px 0; }
        .narrow { max-width: 32rem; }
        .danger { border-color: var(--bad); }
        .field { margin: 0 0 12px; } fieldset.field { border: 0; padding: 0; }
        label, legend { display: block; font-weight: 600; margin-bottom: 2px; }
        label.choice { display: inline-block; font-weight: 400; margin-right: 16px; }
        input, select, textarea { font: inherit; padding: 6px 8px; border: 1px solid #6b7280; border-radius: 4px;
          background: #fff; color: var(--ink); max-width: 100%; }
        input[type=radio], input[type=checkbox] { width: auto; }
        #c-name, #c-site, #c-poller, #c-selectors, #c-notes, #r-reason, #token { width: 100%; }
        [aria-invalid=true] { border: 2px solid var(--bad); }
        .help { margin: 2px 0 0; color: var(--muted); font-size: .9em; }
        .error { color: var(--bad); font-weight: 600; margin: 4px 0 0; }
        .notice { background: #fff4e5; border-left: 4px solid var(--warn); padding: 8px 12px; }
        .success { background: #e7f4ea; border-left: 4px solid var(--ok); padding: 8px 12px; }
        .warning { background: #fff4e5; border-left: 4px solid var(--warn); padding: 8px 12px; }
        .badge { background: var(--bad); color: #fff; border-radius: 9px; padding: 0 7px; font-size: 0.8em; }
        .decide { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; margin-top: 12px; }
        @media (max-width: 900px) { .decide { grid-template-columns: 1fr; } }
        .fingerprint { word-break: break-all; } .fingerprint-short { font-family: monospace; font-size: 1.2em; }
        .status-pending { background: #fff4e5; color: #6b3a00; } .status-approved { background: #e8effc; color: #0b3d91; }
        .status-denied { background: #fbe9e7; color: #8c1d18; }
        button, .button, summary.primary { font: inherit; cursor: pointer; padding: 6px 14px; border-radius: 4px;
          border: 1px solid #4b5563; background: #fff; color: var(--ink); text-decoration: none; display: inline-block; }
        button.primary, summary.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
        button.danger { background: var(--bad); border-color: var(--bad); color: #fff; }
        details.drawer { margin: 0 0 16px; } details.drawer > summary { list-style: none; }
        details.drawer[open] > summary { margin-bottom: 0; }
        .filters { display: flex; flex-wrap: wrap; gap: 12px; align-items: end; margin: 12px 0; }
        .filters .field { margin: 0; }
        ul.counts { display: flex; flex-wrap: wrap; gap: 8px; list-style: none; padding: 0; margin: 0 0 8px; }
        ul.counts a { display: inline-block; padding: 2px 10px; border: 1px solid var(--line); border-radius: 12px;
          background: #fff; text-decoration: none; color: var(--ink); }
        ul.counts a[aria-current] { border-color: var(--accent); background: #e8effc; }
        .status { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: .85em; font-weight: 600;
          background: #e9ecf1; color: var(--ink); }
        .status-created { background: #e8effc; color: #0b3d91; } .status-delivered { background: #fff4e5; color: #6b3a00; }
        .status-activated, .status-active { background: #e7f4ea; color: #0d4f21; }
        .status-revoked { background: #fbe9e7; color: #8c1d18; } .status-expired { background: #eceff1; color: #37474f; }
        tr.flash td { background: #fff7d6; }
        tr.stale td { background: #fff8f0; } .stale-mark { color: var(--warn); }
        pre.command { background: #10151f; color: #e8edf5; padding: 12px; border-radius: 4px; white-space: pre-wrap;
          word-break: break-all; }
        .columns { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 24px; }
        @media (max-width: 900px) { .columns { grid-template-columns: 1fr; } }
        ol.timeline { list-style: none; padding: 0; margin: 0; border-left: 3px solid var(--line); }
        ol.timeline li { padding: 4px 0 10px 12px; } ol.timeline .what { font-weight: 600; display: block; }
        .outcome-denied, .outcome-late { color: var(--bad); }
        .notes, .reason { white-space: pre-wrap; }
        .live { color: var(--muted); min-height: 1.5em; }
        .pager { margin: 12px 0; }
        """

    static let script = """
        "use strict";
        (function () {
          function localTimes(root) {
            root.querySelectorAll("time[datetime]").forEach(function (el) {
              var d = new Date(el.getAttribute("datetime"));
              if (!isNaN(d)) { el.textContent = d.toLocaleString(); }
            });
          }
          function timeCell(iso) {
            var t = document.createElement("time");
            t.setAttribute("datetime", iso);
            t.title = iso.replace("T", " ").slice(0, 19) + " UTC";
            t.textContent = t.title;
            localTimes({ querySelectorAll: function () { return [t]; } });
            return t;
          }
          // The package events that move a row of the packages page.
          var types = ["package.created", "package.delivered", "package.downloaded", "package.activated",
                       "package.revoked", "package.expired"];

          document.addEventListener("DOMContentLoaded", function () {
            localTimes(document);

            document.querySelectorAll("button[data-copy]").forEach(function (button) {
              button.addEventListener("click", function () {
                var text = document.getElementById(button.getAttribute("data-copy")).textContent;
                var done = function () { button.textContent = "Copied"; };
                if (navigator.clipboard && window.isSecureContext) {
                  navigator.clipboard.writeText(text).then(done, function () { button.textContent = "Select and copy"; });
                } else {
                  var range = document.createRange();
                  range.selectNodeContents(document.getElementById(button.getAttribute("data-copy")));
                  var selection = window.getSelection();
                  selection.removeAllRanges(); selection.addRange(range);
                  try { document.execCommand("copy"); done(); } catch (e) { button.textContent = "Press Ctrl+C"; }
                }
              });
            });

            var drawer = document.getElementById("create");
            if (drawer) {
              var poller = document.getElementById("c-poller").closest(".field");
              var sync = function () {
                var checked = drawer.querySelector("input[name=component_type]:checked");
                poller.hidden = checked && checked.value === "poller";
              };
              drawer.querySelectorAll("input[name=component_type]").forEach(function (r) { r.addEventListener("change", sync); });
              sync();
              drawer.addEventListener("toggle", function () {
                if (drawer.open) { document.getElementById("c-name").focus(); }
              });
            }

            var live = document.getElementById("live");
            if (live && window.EventSource) {
              var fresh = 0;
              var source = new EventSource(live.getAttribute("data-stream"));
              source.onopen = function () { if (!fresh) { live.textContent = "Live: rows update as packages change."; } };
              source.onerror = function () { live.textContent = "Live updates interrupted; reconnecting…"; };
              types.forEach(function (type) {
                source.addEventListener(type, function (message) {
                  var pkg = JSON.parse(message.data);
                  var row = document.querySelector('tr[data-id="' + pkg.id + '"]');
                  if (!row) {
                    if (type === "package.created") {
                      fresh += 1;
                      live.textContent = fresh + " new package" + (fresh > 1 ? "s" : "") + " since this page loaded: reload to see them.";
                    }
                    return;
                  }
                  var badge = row.querySelector("[data-status]");
                  var before = badge.textContent;
                  if (before !== pkg.status) {
                    [[before, -1], [pkg.status, 1]].forEach(function (change) {
                      var count = document.querySelector('[data-count="' + change[0] + '"]');
                      if (count) { count.textContent = String(Number(count.textContent) + change[1]); }
                    });
                  }
                  badge.textContent = pkg.status;
                  badge.className = "status status-" + pkg.status;
                  row.classList.add("flash");
                  setTimeout(function () { row.classList.remove("flash"); }, 2000);
                  live.textContent = pkg.name + " is now " + pkg.status + ".";
                });
              });
            }

            var table = document.querySelector("table.events[data-stream]");
            if (table && window.EventSource) {
              var body = document.getElementById("events");
              var state = document.getElementById("ev-state");
              var pause = document.getElementById("ev-pause");
              var filter = document.getElementById("ev-type");
              var paused = false, waiting = [];
              var apply = function (row) { row.hidden = filter.value !== "" && row.getAttribute("data-type") !== filter.value; };
              var show = function (message) {
                var pkg = {};
                try { pkg = JSON.parse(message.data); } catch (e) {}
                var row = document.createElement("tr");
                row.setAttribute("data-type", message.type);
                var cells = [message.lastEventId, null, message.type, null];
                cells.forEach(function (text, i) {
                  var td = document.createElement("td");
                  if (i === 1) { td.appendChild(timeCell(new Date().toISOString())); }
                  else if (i === 3) {
                    var a = document.createElement("a");
                    var enrollment = message.type.indexOf("enrollment.") === 0;
                    a.href = enrollment ? "/enrollments" : "/packages/" + encodeURIComponent(pkg.id || "");
                    a.textContent = pkg.name || (pkg.claimed && pkg.claimed.hostname) || pkg.id || "";
                    td.appendChild(a);
                  } else { td.textContent = text; }
                  row.appendChild(td);
                });
                apply(row);
                body.insertBefore(row, body.firstChild);
              };
              var source = new EventSource(table.getAttribute("data-stream") + "?after=" + table.getAttribute("data-after"));
              source.onopen = function () { state.textContent = paused ? "Paused" : "Live"; };
              source.onerror = function () { state.textContent = "Connection lost; reconnecting (no event will be missed)…"; };
              Array.prototype.map.call(filter.options, function (o) { return o.value; }).filter(Boolean).forEach(function (type) {
                source.addEventListener(type, function (message) {
                  if (paused) { waiting.push(message); state.textContent = "Paused (" + waiting.length + " waiting)"; }
                  else { show(message); }
                });
              });
              pause.addEventListener("click", function () {
                paused = !paused;
                pause.setAttribute("aria-pressed", String(paused));
                pause.textContent = paused ? "Resume" : "Pause";
                if (!paused) { waiting.forEach(show); waiting = []; }
                state.textContent = paused ? "Paused" : "Live";
              });
              filter.addEventListener("change", function () { body.querySelectorAll("tr").forEach(apply); });
            }
          });
        })();
        """
}
