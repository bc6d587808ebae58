/* dealroom pages: the live bell, forms sent without a reload, and the deal room's live
   updates. Plain JavaScript, no dependencies; every page works without it. */
(function () {
  "use strict";

  var body = document.body;
  var userId = body.getAttribute("data-user-id") || "";

  // --- small helpers ---------------------------------------------------------------

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function toast(text, link) {
    var box = $("#toasts");
    if (!box) return;
    var el = document.createElement("div");
    el.className = "toast";
    el.textContent = text;
    if (link) {
      el.appendChild(document.createTextNode(" "));
      var a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.text;
      el.appendChild(a);
    }
    box.appendChild(el);
    setTimeout(function () { el.remove(); }, 6000);
  }

  /* An EventSource that resumes where it stopped: the browser retries by itself with
     Last-Event-ID; when it gives up (an HTTP error, a proxy closing), we open a new one
     from the last id we got, backing off up to 30 s. */
  function liveStream(url, lastId, handlers, onState) {
    var source = null;
    var attempts = 0;
    var stopped = false;
    var timer = null;

    function open() {
      var sep = url.indexOf("?") >= 0 ? "&" : "?";
      var full = lastId !== "" && lastId !== null ? url + sep + "last_event_id=" + encodeURIComponent(lastId) : url;
      source = new EventSource(full);
      onState("connecting");
      source.addEventListener("ready", function (e) {
        attempts = 0;
        if (e.lastEventId) lastId = e.lastEventId;
        onState("live");
      });
      Object.keys(handlers).forEach(function (name) {
        source.addEventListener(name, function (e) {
          if (e.lastEventId) lastId = e.lastEventId;
          var data = null;
          try { data = JSON.parse(e.data); } catch (err) { data = null; }
          handlers[name](data, e);
        });
      });
      source.addEventListener("end", function () {
        stop();
        onState("ended");
      });
      source.onerror = function () {
        if (stopped) return;
        if (source.readyState === EventSource.CLOSED) {
          source.close();
          attempts += 1;
          var wait = Math.min(30000, 1000 * Math.pow(2, Math.min(attempts, 5)));
          onState("reconnecting");
          timer = setTimeout(open, wait);
        } else {
          onState("reconnecting");
        }
      };
    }

    function stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (source) source.close();
    }

    open();
    window.addEventListener("pagehide", stop);
    return { stop: stop, lastId: function () { return lastId; } };
  }

  // --- the bell ----------------------------------------------------------------------

  var bellCount = $("[data-testid=bell-count]");
  var bellLink = $("[data-testid=bell]");

  function setUnread(n) {
    if (!bellCount) return;
    var before = parseInt(bellCount.textContent, 10) || 0;
    bellCount.textContent = String(n);
    bellCount.setAttribute("data-count", String(n));
    if (bellLink) bellLink.setAttribute("aria-label", "Notifications: " + n + " unread");
    if (n > before) {
      bellCount.classList.remove("bump");
      void bellCount.offsetWidth;
      bellCount.classList.add("bump");
    }
  }

  if (userId && bellCount && window.EventSource) {
    liveStream("/v1/me/stream", body.getAttribute("data-me-cursor") || "", {
      notification: function (n) {
        if (n && !n.read_at) setUnread((parseInt(bellCount.textContent, 10) || 0) + 1);
      },
      unread: function (data) {
        if (data && typeof data.unread_count === "number") setUnread(data.unread_count);
      },
      "deal-event": function () {}
    }, function (state) {
      if (state === "ended") toast("Your session has ended.", { href: "/login?expired=1", text: "Sign in again" });
    });
  }

  // --- disclosure forms (the action buttons) -------------------------------------------

  document.addEventListener("toggle", function (e) {
    var details = e.target;
    if (!(details instanceof HTMLDetailsElement) || !details.classList.contains("action")) return;
    if (details.open) {
      $all("details.action[open]", details.parentNode).forEach(function (other) {
        if (other !== details) other.open = false;
      });
      var first = $("input:not([type=hidden]), select, textarea", details);
      if (first) first.focus();
    }
  }, true);

  document.addEventListener("click", function (e) {
    var close = e.target.closest && e.target.closest("[data-close]");
    if (close) {
      var details = close.closest("details");
      if (details) {
        details.open = false;
        var summary = $("summary", details);
        if (summary) summary.focus();
      }
    }
    var menu = $("details.usermenu[open]");
    if (menu && !menu.contains(e.target)) menu.open = false;
  });

  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    var open = document.activeElement && document.activeElement.closest ? document.activeElement.closest("details[open]") : null;
    if (open) {
      open.open = false;
      var summary = $("summary", open);
      if (summary) summary.focus();
    }
  });

  // --- forms sent without a reload -----------------------------------------------------

  function clearErrors(form) {
    $all("[data-error-for]", form).forEach(function (el) { el.hidden = true; el.textContent = ""; });
    $all(".has-error", form).forEach(function (el) { el.classList.remove("has-error"); });
    $all("[aria-invalid=true]", form).forEach(function (el) { el.setAttribute("aria-invalid", "false"); });
    var alert = $("[data-form-error]", form);
    if (alert) { alert.hidden = true; alert.textContent = ""; }
  }

  function showErrors(form, answer) {
    clearErrors(form);
    var fields = answer.fields || {};
    var firstInvalid = null;
    var matched = 0;
    Object.keys(fields).forEach(function (name) {
      var slot = $('[data-error-for="' + name + '"]', form);
      if (!slot) return;
      matched += 1;
      slot.textContent = fields[name];
      slot.hidden = false;
      var field = slot.closest(".field");
      if (field) field.classList.add("has-error");
      var input = form.elements[name];
      if (input && input.setAttribute) {
        input.setAttribute("aria-invalid", "true");
        if (!firstInvalid) firstInvalid = input;
      }
    });
    var alert = $("[data-form-error]", form);
    if (alert) {
      alert.textContent = "";
      var strong = document.createElement("strong");
      strong.textContent = (answer.title || "Not sent") + ".";
      alert.appendChild(strong);
      var text = matched ? (matched > 1 ? " See the highlighted fields." : " See the highlighted field.") : " " + (answer.detail || "");
      alert.appendChild(document.createTextNode(text));
      alert.hidden = false;
    }
    if (firstInvalid) firstInvalid.focus();
    else if (alert) { alert.setAttribute("tabindex", "-1"); alert.focus(); }
    if (!alert && !matched && answer.detail) toast(answer.detail);
  }

  function sameRoom(url) {
    var room = $("#room");
    if (!room) return false;
    var a = document.createElement("a");
    a.href = url;
    return a.pathname === "/deals/" + room.getAttribute("data-deal-id");
  }

  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.hasAttribute("data-diff-form")) {
      e.preventDefault();
      var params = new URLSearchParams(new FormData(form));
      history.replaceState(null, "", location.pathname + "?" + params.toString() + "#diff");
      refreshRoom({ highlight: false });
      return;
    }
    if (!form.hasAttribute("data-enhance") || !window.fetch) return;
    e.preventDefault();
    var button = e.submitter || $("button[type=submit]", form);
    if (button) { button.disabled = true; button.classList.add("is-busy"); }
    var done = function () { if (button) { button.disabled = false; button.classList.remove("is-busy"); } };
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-Requested-With": "dealroom", "Accept": "application/json" }
    }).then(function (response) {
      return response.json().catch(function () {
        return { ok: false, title: "Not sent", detail: "The server answered unexpectedly (" + response.status + "). Try again." };
      });
    }).then(function (answer) {
      done();
      if (answer.ok) {
        clearErrors(form);
        if (answer.redirect && sameRoom(answer.redirect)) {
          var details = form.closest("details");
          if (details) details.open = false;
          if (form.getAttribute("data-kind") === "message") form.reset();
          refreshRoom({ highlight: false, scrollMessages: form.getAttribute("data-kind") === "message" });
        } else {
          location.assign(answer.redirect || location.href);
        }
        return;
      }
      if (answer.status === 401 && answer.redirect) {
        location.assign(answer.redirect);
        return;
      }
      if (answer.code === "NEG-004" && $("#room")) {
        // Someone moved first: show the deal as it is now, keep what was typed.
        refreshRoom({ highlight: true }).then(function () {
          var fresh = form.isConnected ? form : $('details[data-action="' + (form.closest("details") || {}).getAttribute("data-action") + '"] form');
          if (fresh) showErrors(fresh, { title: answer.title, detail: answer.detail + " The page now shows the latest terms; your entries are kept." });
        });
        return;
      }
      showErrors(form, answer);
    }).catch(function () {
      done();
      showErrors(form, { title: "Not sent", detail: "The server could not be reached. Check your connection and send again." });
    });
  });

  // --- the deal room, live -------------------------------------------------------------

  var room = $("#room");
  var refreshing = null;
  var pendingRefresh = false;

  var VERBS = {
    OFFER_MADE: "made an offer",
    COUNTER_SUBMITTED: "sent a counter-offer",
    QUOTE_SENT: "sent a quote",
    QUOTE_REVISED: "revised the quote",
    QUOTE_ACCEPTED: "accepted the terms",
    QUOTE_REJECTED: "rejected the offer",
    NEGOTIATION_ABANDONED: "withdrew",
    CLOSE_REQUESTED: "requested close",
    DEAL_CLOSED: "confirmed close",
    MESSAGE_POSTED: "sent a message",
    RFQ_CREATED: "requested a quote"
  };

  function describe(ev) {
    var who = ev.actor_type === "buyer" ? room.getAttribute("data-buyer-name")
      : ev.actor_type === "seller" ? room.getAttribute("data-seller-name")
      : ev.actor_type === "operator" ? "The operator" : "The system";
    var verb = VERBS[ev.type] || ev.type.toLowerCase().replace(/_/g, " ");
    return who + " " + verb + ".";
  }

  function formState() {
    var open = $("details.action[open]", room);
    if (!open) return null;
    var form = $("form", open);
    var values = {};
    $all("input, select, textarea", form).forEach(function (el) {
      if (!el.name || el.type === "hidden") return;
      values[el.name] = el.type === "checkbox" ? el.checked : el.value;
    });
    return { action: open.getAttribute("data-action"), values: values };
  }

  function restoreForm(state, changed) {
    if (!state) return;
    var details = $('details.action[data-action="' + state.action + '"]', room);
    if (!details) {
      toast("The deal moved on: that move is no longer open to you.");
      return;
    }
    details.open = true;
    var form = $("form", details);
    Object.keys(state.values).forEach(function (name) {
      var el = form.elements[name];
      if (!el) return;
      if (el.type === "checkbox") el.checked = !!state.values[name];
      else el.value = state.values[name];
    });
    if (changed) {
      var alert = $("[data-form-error]", form);
      if (alert) {
        alert.textContent = "The deal changed while this form was open; check the terms on the table before you send.";
        alert.hidden = false;
      }
    }
  }

  function refreshRoom(opts) {
    opts = opts || {};
    if (!room) return Promise.resolve();
    if (refreshing) {
      pendingRefresh = pendingRefresh || opts;
      return refreshing;
    }
    var keys = {};
    $all("[data-key]", room).forEach(function (el) { keys[el.getAttribute("data-key")] = true; });
    var taskBefore = ($("[data-testid=task-card]", room) || {}).textContent || "";
    var list = $("[data-testid=message-list]", room);
    var atBottom = list ? list.scrollHeight - list.scrollTop - list.clientHeight < 40 : true;
    var versionBefore = room.getAttribute("data-version");
    var form = formState();
    refreshing = fetch(location.pathname + location.search, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401 || response.redirected && response.url.indexOf("/login") >= 0) {
          location.assign("/login?expired=1&next=" + encodeURIComponent(location.pathname));
          throw new Error("signed out");
        }
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("room");
        if (!fresh) return;
        $all("[data-region]", room).forEach(function (region) {
          var name = region.getAttribute("data-region");
          var replacement = $('[data-region="' + name + '"]', fresh);
          if (replacement) region.replaceWith(document.importNode(replacement, true));
        });
        ["data-last-seq", "data-version"].forEach(function (attr) {
          room.setAttribute(attr, fresh.getAttribute(attr));
        });
        var changed = room.getAttribute("data-version") !== versionBefore;
        restoreForm(form, changed && opts.highlight);
        if (opts.highlight) {
          $all("[data-key]", room).forEach(function (el) {
            if (!keys[el.getAttribute("data-key")]) el.classList.add("is-new");
          });
          var task = $("[data-testid=task-card]", room);
          if (task && task.textContent !== taskBefore) task.classList.add("is-new");
        }
        var newList = $("[data-testid=message-list]", room);
        if (newList && (atBottom || opts.scrollMessages)) newList.scrollTop = newList.scrollHeight;
      })
      .catch(function () {})
      .then(function () {
        refreshing = null;
        if (pendingRefresh) {
          var next = pendingRefresh;
          pendingRefresh = false;
          return refreshRoom(next);
        }
      });
    return refreshing;
  }

  if (room && window.EventSource) {
    var status = $("[data-testid=live-status]", room);
    var label = status ? $(".live-text", status) : null;
    var texts = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", ended: "Session ended" };
    var others = [];
    var timer = null;
    var seen = parseInt(room.getAttribute("data-last-seq"), 10) || 0;

    var flush = function () {
      timer = null;
      var fromOthers = others.filter(function (ev) { return ev.actor_id !== userId; });
      var moves = fromOthers.filter(function (ev) { return ev.actor_type !== "system"; });
      others = [];
      refreshRoom({ highlight: fromOthers.length > 0 });
      if (moves.length) toast(describe(moves[moves.length - 1]));
    };

    liveStream("/v1/deals/" + room.getAttribute("data-deal-id") + "/stream", String(seen), {
      "deal-event": function (ev) {
        if (!ev || ev.seq <= seen) return;
        seen = ev.seq;
        others.push(ev);
        if (!timer) timer = setTimeout(flush, 150);
      }
    }, function (state) {
      if (status) status.setAttribute("data-state", state);
      if (label) label.textContent = texts[state] || state;
      if (state === "ended") toast("Your session has ended; live updates stopped.", { href: "/login?expired=1&next=" + encodeURIComponent(location.pathname), text: "Sign in again" });
    });
  }
})();
