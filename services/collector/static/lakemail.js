/*! lakemail.js: a first-party tracking snippet speaking Segment's Tracking API to a lakemail collector.
 *
 * <script src="https://collector.example/lakemail.js" data-write-key="KEY"></script>, or loaded async by the
 * README's inline stub (analytics.js's way): until this loads, window.lakemail is an array of the calls
 * made ({method, args, timestamp}); they are made again here, in order, as of their timestamp.
 * As analytics.js has them: lakemail.page([category], [name], [properties], [options], [callback]);
 * lakemail.track(event, [properties], [options], [callback]); lakemail.identify([userId], [traits],
 * [options], [callback]) (options are accepted and not used; a callback runs 300 ms later, as analytics.js
 * runs it); lakemail.flush(); lakemail.anonymousId(); lakemail.user(); lakemail.reset().
 *
 * Ids: the anonymous id lives in a first-party cookie (lm_aid), the user id after identify in lm_uid: on the
 * site's top domain (www. and checkout. share them), renewed on every page for a year, SameSite=Lax, Secure
 * on https. Where no cookie can be written they live in the page's memory.
 * Every message carries context.page (url, path, referrer, title, search) and, when the URL has utm_*
 * parameters, context.campaign (source, medium, name, term, content).
 * Sending: a message is serialised when it is called; one that cannot be (a circular object) or is over the
 * collector's 32 KB is dropped with a console warning, never thrown into the page. Batches of at most 20
 * messages and 32 KB (within the 64 KB a browser allows keepalive requests and beacons, and the collector's
 * 500 KB) go every second as text/plain, so that no CORS preflight is needed. A batch the collector
 * could not take now (network error, 408, 429, 5xx) is sent again with the same messageIds (the lake counts
 * it once), not before the answer's Retry-After. When the page is hidden or goes away, what is left leaves
 * with navigator.sendBeacon; what cannot (the collector is refusing, the beacon budget is spent) is kept in
 * localStorage (lm_queue) and sent by the site's next page. So is a batch still in flight then (its answer
 * may never reach a page that has gone): sent again, the lake counts it once.
 */
(function (window, document) {
  "use strict";
  var VERSION = "1.1.0";
  var ANONYMOUS_COOKIE = "lm_aid";
  var USER_COOKIE = "lm_uid";
  var STORED = "lm_queue";
  var YEAR_SECONDS = 365 * 24 * 3600;
  var FLUSH_AT = 20;
  var FLUSH_MS = 1000;
  var CALLBACK_MS = 300;
  var MAX_MESSAGE_BYTES = 32 * 1024; // the collector refuses a longer message
  var MAX_BATCH_BYTES = 32 * 1024; // of messages in one request (one longer message goes alone)
  var MAX_QUEUE = 1000; // bounded: the oldest are dropped past it (a page offline for a long time)
  var MAX_STORED_CHARS = 1000000; // of lm_queue, within localStorage's few MB
  var MAX_WAIT_MS = 300000; // a Retry-After is honoured up to this
  var UTM = { utm_source: "source", utm_medium: "medium", utm_campaign: "name", utm_term: "term",
    utm_content: "content" };
  var script = document.currentScript;
  var stub = window.lakemail; // the inline stub's calls, made before this loaded
  var encoder = new window.TextEncoder();
  var state = { host: "", writeKey: "", queue: [], timer: null, sending: false, failures: 0, retryAt: 0,
    domain: "", cookies: false, memory: {}, at: null, inFlight: null };

  function warn(what) {
    if (window.console && window.console.warn) window.console.warn("lakemail.js: " + what);
  }

  function safely(name, fn) { // nothing the snippet does may throw into the shop's page
    return function () {
      try { return fn.apply(null, arguments); } catch (e) { warn(name + " failed: " + e); }
    };
  }

  function uuid() {
    if (window.crypto.randomUUID) return window.crypto.randomUUID();
    var bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map
      .call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); })
      .join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function readCookie(name) {
    try {
      var found = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
      return found ? decodeURIComponent(found[1]) || null : null;
    } catch (e) { return null; } // no cookies here (a sandboxed frame), or a value that is not ours
  }

  function writeCookie(name, value, maxAge, domain) {
    var secure = window.location.protocol === "https:" ? "; Secure" : "";
    try {
      document.cookie = name + "=" + encodeURIComponent(value) + "; Max-Age=" + maxAge + "; Path=/" +
        (domain ? "; Domain=" + domain : "") + "; SameSite=Lax" + secure;
    } catch (e) { /* no cookies here */ }
  }

  // The widest domain a cookie may be set on (shop.example for www.shop.example, never a public suffix such
  // as co.uk), found as analytics.js finds it, with a probe cookie; "" (host-only) for an IP or localhost.
  function topDomain() {
    var host = window.location.hostname;
    if (host.indexOf(".") < 0 || /^[\d.]+$|:/.test(host)) return "";
    var labels = host.split(".");
    for (var i = labels.length - 2; i >= 0; i--) {
      var domain = labels.slice(i).join(".");
      writeCookie("lm_probe", "1", 10, domain);
      if (readCookie("lm_probe")) {
        writeCookie("lm_probe", "", 0, domain);
        return domain;
      }
    }
    return "";
  }

  function stored(name) { // an id from its cookie, or from memory where no cookie can be written
    return readCookie(name) || (state.cookies ? null : state.memory[name] || null);
  }

  function store(name, value) { // value null: forget it
    state.memory[name] = value;
    if (state.domain) writeCookie(name, "", 0, ""); // an older host-only cookie goes: the domain's counts
    writeCookie(name, value || "", value ? YEAR_SECONDS : 0, state.domain);
  }

  function anonymousId() {
    var id = stored(ANONYMOUS_COOKIE);
    if (!id) {
      id = uuid();
      store(ANONYMOUS_COOKIE, id);
    }
    return id;
  }

  function campaign() {
    var found;
    new URLSearchParams(window.location.search).forEach(function (value, key) {
      if (value && Object.prototype.hasOwnProperty.call(UTM, key)) (found = found || {})[UTM[key]] = value;
    });
    return found;
  }

  function pageProperties() {
    return { path: window.location.pathname, referrer: document.referrer, search: window.location.search,
      title: document.title, url: window.location.href };
  }

  function context() {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { zone = undefined; }
    return { library: { name: "lakemail.js", version: VERSION }, page: pageProperties(), campaign: campaign(),
      userAgent: window.navigator.userAgent, locale: window.navigator.language, timezone: zone };
  }

  function entry(text) { return { text: text, size: encoder.encode(text).length }; }

  function enqueue(message) {
    message.messageId = uuid();
    message.anonymousId = anonymousId();
    var userId = stored(USER_COOKIE);
    if (userId && !message.userId) message.userId = userId;
    message.timestamp = state.at || new Date().toISOString(); // a stub's call: when it was made
    message.context = context();
    var what = message.type + (message.event ? " '" + message.event + "'" : "");
    var item;
    try {
      item = entry(JSON.stringify(message));
    } catch (e) {
      return warn(what + " dropped, not JSON: " + e);
    }
    if (item.size > MAX_MESSAGE_BYTES) return warn(what + " dropped: " + item.size + " bytes > 32768");
    push([item], false);
    if (state.queue.length >= FLUSH_AT) flush();
    else schedule(FLUSH_MS);
  }

  function push(items, first) {
    state.queue = first ? items.concat(state.queue) : state.queue.concat(items);
    if (state.queue.length > MAX_QUEUE) state.queue.splice(0, state.queue.length - MAX_QUEUE);
  }

  function schedule(ms) {
    if (state.timer) return;
    state.timer = window.setTimeout(function () { state.timer = null; flush(); }, ms);
  }

  function take() { // the next batch: up to FLUSH_AT messages and MAX_BATCH_BYTES, one message at least
    var count = 0, size = 0;
    while (count < Math.min(FLUSH_AT, state.queue.length) &&
      (!count || size + state.queue[count].size <= MAX_BATCH_BYTES)) size += state.queue[count++].size;
    return state.queue.splice(0, count);
  }

  function payload(batch) {
    var texts = batch.map(function (item) { return item.text; });
    return '{"batch":[' + texts.join(",") + '],"sentAt":"' + new Date().toISOString() + '","writeKey":' +
      JSON.stringify(state.writeKey) + "}";
  }

  function post(body) {
    return window.fetch(state.host + "/v1/batch", { method: "POST", body: body, keepalive: true,
      credentials: "omit", headers: { "Content-Type": "text/plain" } });
  }

  function flush() {
    if (state.sending || !state.queue.length || !state.writeKey) return;
    if (state.retryAt > Date.now()) return schedule(state.retryAt - Date.now()); // the collector said when
    var batch = take();
    state.sending = true;
    state.inFlight = { batch: batch, kept: false };
    new Promise(function (resolve) { resolve(post(payload(batch))); })
      .then(function (response) {
        // 408, 429 and 5xx: not kept now, try again; any other answer is final (a 400 will not get better)
        if (response.status === 408 || response.status === 429 || response.status >= 500) {
          var refused = new Error("retry later");
          refused.wait = retryAfter(response);
          throw refused;
        }
        state.failures = 0;
      })
      .catch(function (refused) {
        push(batch, true);
        state.failures += 1;
        var backoff = Math.min(30000, FLUSH_MS * Math.pow(2, state.failures));
        state.retryAt = Date.now() + Math.max(backoff, (refused && refused.wait) || 0);
      })
      .then(function () {
        state.sending = false;
        if (state.inFlight.kept) unkeep(batch); // answered: in the queue again, or delivered
        state.inFlight = null;
        if (!state.queue.length) return;
        if (document.visibilityState === "hidden") return leave(); // refused as the page went
        var wait = state.retryAt - Date.now();
        var full = state.queue.length >= FLUSH_AT || queued() >= MAX_BATCH_BYTES;
        schedule(wait > 0 ? wait : full ? 0 : FLUSH_MS); // a full batch waiting goes at once
      });
  }

  function queued() {
    return state.queue.reduce(function (sum, item) { return sum + item.size; }, 0);
  }

  function retryAfter(response) {
    var seconds = Number(response.headers.get("Retry-After"));
    return seconds > 0 ? Math.min(seconds * 1000, MAX_WAIT_MS) : 0;
  }

  function beacon(body) {
    if (!window.navigator.sendBeacon) {
      post(body).catch(function () {});
      return true;
    }
    return window.navigator.sendBeacon(state.host + "/v1/batch", new Blob([body], { type: "text/plain" }));
  }

  function leave() { // the page is hidden or goes: what is left leaves by beacon, or is kept for the next
    var refusing = state.retryAt > Date.now() || !state.writeKey; // a beacon now would be refused too
    var kept = [];
    if (state.inFlight && !state.inFlight.kept) { // its answer may come to a page that is gone
      state.inFlight.kept = true;
      kept = state.inFlight.batch.slice();
    }
    while (state.queue.length) {
      var batch = take();
      if (refusing || !beacon(payload(batch))) kept = kept.concat(batch); // false: over the beacon budget
    }
    if (!kept.length) return;
    var texts = kept.map(function (item) { return item.text; }), chars = 0;
    try {
      texts = (JSON.parse(window.localStorage.getItem(STORED)) || []).concat(texts).reverse()
        .filter(function (text) { return (chars += text.length) <= MAX_STORED_CHARS; }).reverse();
      window.localStorage.setItem(STORED, JSON.stringify(texts));
    } catch (e) { warn(kept.length + " messages lost: no localStorage to keep them in"); }
  }

  function unkeep(batch) { // a batch kept as it was in flight has its answer: lm_queue no longer needs it
    var texts = batch.map(function (item) { return item.text; });
    try {
      var left = (JSON.parse(window.localStorage.getItem(STORED)) || [])
        .filter(function (text) { return texts.indexOf(text) < 0; });
      if (left.length) window.localStorage.setItem(STORED, JSON.stringify(left));
      else window.localStorage.removeItem(STORED);
    } catch (e) { /* no localStorage: nothing was kept */ }
  }

  function replay(calls) { // the stub's calls, in order, each as of when it was made
    if (!Array.isArray(calls)) return;
    calls.forEach(function (call) {
      var known = call && Object.prototype.hasOwnProperty.call(lakemail, call.method) &&
        typeof lakemail[call.method] === "function" && Array.isArray(call.args);
      if (!known) return warn("a queued call dropped: not one of lakemail's");
      state.at = typeof call.timestamp === "string" ? call.timestamp : null;
      lakemail[call.method].apply(lakemail, call.args); // safely(): never throws
      state.at = null;
    });
  }

  function restore() { // what an earlier page (or this one, hidden) kept: sent first
    var texts;
    try {
      texts = JSON.parse(window.localStorage.getItem(STORED));
      window.localStorage.removeItem(STORED);
    } catch (e) { return; }
    if (!Array.isArray(texts) || !texts.length) return;
    push(texts.filter(function (text) { return typeof text === "string"; }).map(entry), true);
    schedule(0);
  }

  function isObject(value) { return value !== null && typeof value === "object" && !Array.isArray(value); }

  // analytics.js's optional arguments: up to `leading` values (names, ids), then properties (an object, else
  // {}), options, and a callback last, run CALLBACK_MS later whatever becomes of the message
  function resolve(args, leading) {
    var list = Array.prototype.slice.call(args), values = [];
    if (typeof list[list.length - 1] === "function") {
      window.setTimeout(list.pop(), CALLBACK_MS);
      window.setTimeout(flush, 0);
    }
    while (values.length < leading && list.length && !isObject(list[0])) values.push(list.shift());
    return { values: values, properties: isObject(list[0]) ? list[0] : {} };
  }

  var lakemail = {
    VERSION: VERSION,
    load: safely("load", function (writeKey, options) {
      state.writeKey = writeKey;
      state.host = ((options && options.host) || state.host).replace(/\/+$/, "");
      if (state.queue.length) schedule(0);
    }),
    page: safely("page", function () {
      var args = resolve(arguments, 2);
      var names = args.values.filter(function (value) { return typeof value === "string"; });
      var name = names.pop(), category = names.pop();
      // name and category are the message's (the lake's page_name, page_category), not properties': those
      // are a product's there
      var properties = Object.assign(pageProperties(), args.properties);
      enqueue({ type: "page", name: name, category: category, properties: properties });
    }),
    track: safely("track", function (event) {
      enqueue({ type: "track", event: String(event), properties: resolve(arguments, 1).properties });
    }),
    identify: safely("identify", function () {
      var args = resolve(arguments, 1);
      var userId = args.values[0] === undefined || args.values[0] === null ? "" : String(args.values[0]);
      if (userId) store(USER_COOKIE, userId);
      enqueue({ type: "identify", userId: userId || undefined, traits: args.properties });
    }),
    flush: safely("flush", flush),
    anonymousId: safely("anonymousId", anonymousId),
    user: safely("user", function () { return stored(USER_COOKIE); }),
    reset: safely("reset", function () {
      store(ANONYMOUS_COOKIE, null);
      store(USER_COOKIE, null);
    })
  };

  window.lakemail = lakemail;
  safely("start", function () {
    state.domain = topDomain();
    var anonymous = readCookie(ANONYMOUS_COOKIE) || uuid(), user = readCookie(USER_COOKIE);
    store(ANONYMOUS_COOKIE, anonymous); // renewed: a year from the last visit
    if (user) store(USER_COOKIE, user);
    state.cookies = readCookie(ANONYMOUS_COOKIE) === anonymous;
    if (script && script.src) state.host = new URL(script.src, window.location.href).origin;
    if (script && script.getAttribute("data-host")) state.host = script.getAttribute("data-host");
    if (script && script.getAttribute("data-write-key")) lakemail.load(script.getAttribute("data-write-key"));
    restore();
    replay(stub);
  })();
  window.addEventListener("pagehide", safely("pagehide", leave));
  window.addEventListener("pageshow", safely("pageshow", function (e) { if (e.persisted) restore(); }));
  document.addEventListener("visibilitychange", safely("visibilitychange", function () {
    if (document.visibilityState === "hidden") leave();
    else restore();
  }));
})(window, document);
