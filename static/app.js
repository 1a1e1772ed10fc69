/* Progressive enhancement only: every page works without this file.
   - Typeahead on the builder's search box (ARIA combobox pattern, keyboard operable).
   - Builder options carried into the search form and the add/remove links when changed, so
     that adding a member after choosing options keeps them (without JS they travel in the URL).
   - Confirmation before state-changing admin buttons marked with data-confirm.
   No inline handlers anywhere, so a strict Content-Security-Policy (script-src 'self') holds. */
(function () {
  "use strict";

  function addMemberUrl(userId) {
    var url = new URL(window.location.href);
    var members = url.searchParams.getAll("member");
    if (members.indexOf(String(userId)) === -1) {
      url.searchParams.append("member", String(userId));
    }
    url.searchParams.delete("q");
    url.searchParams.delete("page");
    return url.pathname + "?" + url.searchParams.toString();
  }

  function setupTypeahead(input) {
    var endpoint = input.getAttribute("data-typeahead");
    var list = document.getElementById(input.getAttribute("aria-controls"));
    if (!endpoint || !list) { return; }
    var items = [];
    var active = -1;
    var timer = null;
    var lastQuery = "";
    var controller = null;

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function highlight(index) {
      var options = list.querySelectorAll("[role=option]");
      options.forEach(function (el, i) { el.setAttribute("aria-selected", i === index ? "true" : "false"); });
      active = index;
      if (index >= 0 && options[index]) {
        input.setAttribute("aria-activedescendant", options[index].id);
        options[index].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function choose(index) {
      var item = items[index];
      if (item) { window.location.assign(addMemberUrl(item.user_id)); }
    }

    function render(results) {
      items = results;
      list.textContent = "";
      if (!results.length) {
        var none = document.createElement("li");
        none.className = "muted";
        none.textContent = "No one matches.";
        list.appendChild(none);
      }
      results.forEach(function (r, i) {
        var li = document.createElement("li");
        li.id = "q-option-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        var name = document.createElement("strong");
        name.textContent = r.name || ("User " + r.user_id);
        var sub = document.createElement("span");
        sub.className = "sub";
        // city and genres only where people's pages are public (PUBLIC_PEOPLE_PAGES)
        sub.textContent = "#" + r.user_id + (r.city ? " · " + r.city : "") +
          (r.favourite_genres && r.favourite_genres.length ?
            " · favourite genres: " + r.favourite_genres.slice(0, 3).join(", ") : "");
        li.appendChild(name);
        li.appendChild(sub);
        li.addEventListener("mousedown", function (ev) { ev.preventDefault(); choose(i); });
        list.appendChild(li);
      });
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      active = -1;
    }

    function search() {
      var q = input.value.trim();
      if (q === lastQuery) { return; }
      lastQuery = q;
      if (!q) { close(); return; }
      if (controller) { controller.abort(); }
      controller = new AbortController();
      fetch(endpoint + "?limit=8&q=" + encodeURIComponent(q), {
        headers: { Accept: "application/json" }, signal: controller.signal
      })
        .then(function (resp) { return resp.ok ? resp.json() : { results: [] }; })
        .then(function (data) { if (input.value.trim() === q) { render(data.results || []); } })
        .catch(function () { /* aborted or offline: the Search button still works */ });
    }

    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(search, 150);
    });
    input.addEventListener("keydown", function (ev) {
      if (list.hidden) { return; }
      if (ev.key === "ArrowDown") { ev.preventDefault(); highlight(Math.min(active + 1, items.length - 1)); }
      else if (ev.key === "ArrowUp") { ev.preventDefault(); highlight(Math.max(active - 1, 0)); }
      else if (ev.key === "Enter" && active >= 0) { ev.preventDefault(); choose(active); }
      else if (ev.key === "Escape") { close(); }
    });
    input.addEventListener("blur", function () { window.setTimeout(close, 120); });
  }

  var OPTION_NAMES = ["length", "strategy", "model", "exclude_explicit"];

  function builderOptions(form) {
    var opts = {};
    OPTION_NAMES.forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (!field) { return; }
      opts[name] = field.type === "checkbox" ? (field.checked ? "1" : "") : field.value;
    });
    return opts;
  }

  function withOptions(url, opts) {
    Object.keys(opts).forEach(function (name) {
      if (opts[name]) { url.searchParams.set(name, opts[name]); } else { url.searchParams.delete(name); }
    });
    return url;
  }

  function setupOptionSync(form) {
    var search = document.getElementById("search-form");
    form.addEventListener("change", function () {
      var opts = builderOptions(form);
      window.history.replaceState(null, "", withOptions(new URL(window.location.href), opts));
      document.querySelectorAll("a.add-member, a.remove-member").forEach(function (a) {
        var url = withOptions(new URL(a.href), opts);
        a.setAttribute("href", url.pathname + "?" + url.searchParams.toString());
      });
      if (!search) { return; }
      Object.keys(opts).forEach(function (name) {
        var input = search.querySelector('input[type="hidden"][name="' + name + '"]');
        if (opts[name]) {
          if (!input) {
            input = document.createElement("input");
            input.type = "hidden";
            input.name = name;
            search.appendChild(input);
          }
          input.value = opts[name];
        } else if (input) {
          input.remove();
        }
      });
    });
  }

  function setupConfirm(form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { ev.preventDefault(); }
    });
  }

  document.querySelectorAll("input[data-typeahead]").forEach(setupTypeahead);
  document.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
  var buildForm = document.getElementById("build-form");
  if (buildForm) { setupOptionSync(buildForm); }
}());
