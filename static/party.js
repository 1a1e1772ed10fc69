/* The live party page: conditional polling of the queue (ETag / 304) and the buttons.
   The guest's or host's token is an HttpOnly cookie the page never sees; every change is sent
   with the X-Requested-With header the API asks of cookie-authenticated changes. Text is set
   with textContent only: guest names come from other people. */
(function () {
  "use strict";
  var root = document.getElementById("party");
  if (!root) { return; }
  var party = root.getAttribute("data-party");
  var guest = root.getAttribute("data-guest");
  var isHost = root.getAttribute("data-host") === "1";
  var etag = root.getAttribute("data-etag");
  var api = "/parties/" + encodeURIComponent(party);
  var status = document.getElementById("party-status");
  var queue = null;
  var POLL_MS = 1500;
  var busy = false;

  function say(text) { if (status) { status.textContent = text; } }

  function names(q) {
    var out = {};
    q.guests.forEach(function (g) { out[g.guest_id] = g.name; });
    return out;
  }

  function trackNodes(li, t, who) {
    var name = document.createElement("span");
    name.className = "t-name";
    name.textContent = t.name || t.id;
    var artist = document.createElement("span");
    artist.className = "muted";
    artist.textContent = " · " + t.artist;
    li.appendChild(name);
    li.appendChild(artist);
    if (t["for"] && t["for"].length) {
      var f = document.createElement("span");
      f.className = "for small";
      f.textContent = " for " + t["for"].map(function (g) {
        return who[g] || "a guest who left";
      }).join(", ");
      li.appendChild(f);
    }
  }

  function controls() {
    return isHost || root.getAttribute("data-controls") === "1";
  }

  function render(q) {
    queue = q;
    var who = names(q);
    var now = document.getElementById("now-playing");
    now.textContent = "";
    if (q.now_playing) { trackNodes(now, q.now_playing, who); } else { now.textContent = "Nothing yet"; }
    var up = document.getElementById("upcoming");
    up.textContent = "";
    q.upcoming.forEach(function (t, i) {
      var li = document.createElement("li");
      li.setAttribute("data-track", t.id);
      trackNodes(li, t, who);
      if (controls()) {
        var row = document.createElement("span");
        row.className = "btn-row track-actions";
        if (i > 0) { row.appendChild(button("Up", "move-up", t, "Move " + (t.name || t.id) + " up")); }
        row.appendChild(button("Remove", "remove", t, "Remove " + (t.name || t.id)));
        li.appendChild(row);
      }
      up.appendChild(li);
    });
    var here = document.getElementById("guests");
    here.textContent = "";
    q.guests.forEach(function (g) {
      var li = document.createElement("li");
      li.className = "chip";
      li.setAttribute("data-guest", g.guest_id);
      li.textContent = g.name;
      here.appendChild(li);
    });
    var played = document.getElementById("played");
    played.textContent = "";
    q.played.forEach(function (t) {
      var li = document.createElement("li");
      trackNodes(li, t, who);
      played.appendChild(li);
    });
    var next = document.getElementById("next-button");
    if (next) { next.hidden = !controls(); }
  }

  function button(text, action, t, label) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn-ghost btn-small";
    b.textContent = text;
    b.setAttribute("data-action", action);
    b.setAttribute("data-track", t.id);
    b.setAttribute("aria-label", label);
    return b;
  }

  function ended() {
    window.location.reload();  // the server renders the "party has ended" page
  }

  function take(response) {
    var controlsHeader = response.headers.get("X-Party-Guests-Control");
    if (controlsHeader !== null) { root.setAttribute("data-controls", controlsHeader); }
    if (response.status === 410) { ended(); return null; }
    if (response.status === 304) { return null; }
    var tag = response.headers.get("ETag");
    if (!response.ok) {
      return response.json().then(function (e) { say(e.message || "Something went wrong"); });
    }
    if (tag) { etag = tag.replace(/^W\//, "").replace(/"/g, ""); }
    return response.json().then(function (q) { render(q); });
  }

  function poll() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(api + "/queue", {headers: {"If-None-Match": '"' + etag + '"'}, credentials: "same-origin"})
      .then(take)
      .catch(function () { /* offline for a moment: the next poll tries again */ })
      .then(function () { busy = false; });
  }

  function send(method, path, body) {
    var init = {method: method, credentials: "same-origin",
                headers: {"X-Requested-With": "pozytywka"}};
    if (body) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(api + path, init);
  }

  function feedback(kind) {
    if (!queue || !queue.now_playing) { return; }
    var name = queue.now_playing.name;
    send("POST", "/events", {guest_id: Number(guest), track_id: queue.now_playing.id, event: kind})
      .then(take)
      .then(function () { say((kind === "skip" ? "Skipped " : "Liked ") + name + ". The queue follows your taste."); });
  }

  function on(id, event, fn) {
    var el = document.getElementById(id);
    if (el) { el.addEventListener(event, fn); }
  }

  on("skip-button", "click", function () { feedback("skip"); });
  on("like-button", "click", function () { feedback("like"); });
  on("next-button", "click", function () { send("POST", "/next").then(take); });
  on("leave-button", "click", function () {
    send("DELETE", "/guests/" + encodeURIComponent(guest)).then(function () { window.location.href = "/"; });
  });
  on("end-button", "click", function () {
    if (window.confirm("End the party for everyone?")) { send("DELETE", "").then(ended); }
  });
  on("controls-toggle", "change", function (e) {
    send("PATCH", "", {guests_control: e.target.checked}).then(take);
  });
  on("upcoming", "click", function (e) {
    var b = e.target.closest("button[data-action]");
    if (!b) { return; }
    var id = encodeURIComponent(b.getAttribute("data-track"));
    var request = b.getAttribute("data-action") === "remove"
      ? send("DELETE", "/queue/" + id) : send("POST", "/queue/" + id + "/up");
    request.then(take);
  });

  // first render from the JSON (adds the host's buttons), then poll
  fetch(api + "/queue", {credentials: "same-origin"}).then(take).catch(function () {});
  window.setInterval(poll, POLL_MS);
  document.addEventListener("visibilitychange", poll);
}());
