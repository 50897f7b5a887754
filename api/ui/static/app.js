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
    // A list of the whole fleet waits longer than one run's page: under
    // a busy fleet it is fetched about once a second, not per event.
    var delay = parseInt(section.getAttribute("data-live-delay") || "150", 10);
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
      timer = setTimeout(function () { timer = null; refresh(); }, delay);
    }
    connect(function () {
      var es = new EventSource(section.getAttribute("data-live-stream"));
      es.onmessage = schedule;
      es.onopen = function () { section.classList.remove("stale"); };
      es.onerror = function () { section.classList.add("stale"); };
      return es;
    }, function () {
      // Back from the browser's page cache: what happened meanwhile.
      refresh();
    });
  }

  // connect keeps a stream open while the page is shown. A page left for
  // another stays in the browser's back/forward cache; closing its stream
  // frees the connection (over plain HTTP a browser opens at most six to a
  // server, and streams held by cached pages would starve new ones).
  function connect(open, resumed) {
    var es = open();
    window.addEventListener("pagehide", function () {
      if (es) { es.close(); es = null; }
    });
    window.addEventListener("pageshow", function (ev) {
      if (ev.persisted && !es) { es = open(); if (resumed) { resumed(); } }
    });
  }

  // The events page: new events are added at the top, as text.
  function tail(table) {
    var body = table.tBodies[0];
    var status = document.getElementById("live-state");
    var last = 0;
    connect(function () {
      // After a pause in the page cache, resume after the last event shown.
      var url = table.getAttribute("data-tail");
      if (last) { url = url.replace(/since=\d+/, "since=" + last); }
      var es = new EventSource(url);
      es.addEventListener("open", function () { if (status) { status.textContent = "live"; status.className = "live on"; } });
      es.onerror = function () { if (status) { status.textContent = "reconnecting…"; status.className = "live"; } };
      es.onmessage = add;
      return es;
    });
    function add(msg) {
      var ev;
      try { ev = JSON.parse(msg.data); } catch (e) { return; }
      if (!ev.seq || ev.seq <= last) { return; }
      last = ev.seq;
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
    }
  }

  document.querySelectorAll("[data-live-stream]").forEach(live);
  document.querySelectorAll("[data-tail]").forEach(tail);
})();
