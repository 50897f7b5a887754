// tinkops dashboard: keeps the live parts of a page current from the API's
// event stream (server-sent events). No polling loop: a part is fetched
// again only when an event about it arrives, at most one fetch at a time,
// and events that arrive during a fetch cause one more fetch after it.
"use strict";

(function () {
  // Live sections: data-live-stream is the event stream, data-live-src the
  // server-rendered fragment that replaces the section's content.
  function live(section) {
    var src = section.getAttribute("data-live-src");
    var busy = false, again = false, timer = null;
    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      fetch(src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (resp) {
          if (!resp.ok) { throw new Error("HTTP " + resp.status); }
          return resp.text();
        })
        .then(function (html) {
          // The fragment is rendered by the server with html/template:
          // every value in it is escaped.
          var doc = new DOMParser().parseFromString(html, "text/html");
          section.replaceChildren.apply(section, Array.prototype.slice.call(doc.body.childNodes));
          section.setAttribute("data-refreshed", String(Date.now()));
        })
        .catch(function () { section.classList.add("stale"); })
        .finally(function () {
          busy = false;
          if (again) { again = false; schedule(); }
        });
    }
    function schedule() {
      // Bursts of events (a run writes several at once) make one fetch.
      if (timer) { return; }
      timer = setTimeout(function () { timer = null; refresh(); }, 150);
    }
    var es = new EventSource(section.getAttribute("data-live-stream"));
    es.onmessage = schedule;
    es.onopen = function () { section.classList.remove("stale"); };
    es.onerror = function () { section.classList.add("stale"); };
  }

  // The events page: new events are added at the top, as text.
  function tail(table) {
    var body = table.tBodies[0];
    var status = document.getElementById("live-state");
    var es = new EventSource(table.getAttribute("data-tail"));
    es.addEventListener("open", function () { if (status) { status.textContent = "live"; status.className = "live on"; } });
    es.onerror = function () { if (status) { status.textContent = "reconnecting…"; status.className = "live"; } };
    es.onmessage = function (msg) {
      var ev;
      try { ev = JSON.parse(msg.data); } catch (e) { return; }
      var obj = "";
      if (ev.kind) { obj = ev.kind + "/" + (ev.namespace ? ev.namespace + "/" : "") + ev.name; }
      var row = document.createElement("tr");
      row.className = "ev-" + ev.type + " new";
      [String(ev.seq), (ev.time || "").replace("T", " ").replace(/\.\d+/, ""), ev.type, obj, ev.message, ev.actor].forEach(function (text, i) {
        var td = document.createElement("td");
        td.textContent = text || "";
        if (i === 0) { td.className = "num"; }
        if (i === 4) { td.className = "msg"; }
        row.appendChild(td);
      });
      body.insertBefore(row, body.firstChild);
      while (body.rows.length > 1000) { body.deleteRow(body.rows.length - 1); }
    };
  }

  document.querySelectorAll("[data-live-stream]").forEach(live);
  document.querySelectorAll("[data-tail]").forEach(tail);
})();
