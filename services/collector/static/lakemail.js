/*! lakemail.js: a first-party tracking snippet speaking Segment's Tracking API to a lakemail collector.
 *
 * <script src="https://collector.example/lakemail.js" data-write-key="KEY"></script>
 * lakemail.page([name], [properties]); lakemail.track(event, [properties]);
 * lakemail.identify(userId, [traits]); lakemail.flush(); lakemail.anonymousId(); lakemail.reset();
 *
 * The anonymous id lives in a first-party cookie (lm_aid, a year), the user id after identify in lm_uid.
 * Calls are batched: sent every second or every 20 messages, as text/plain so that no CORS preflight
 * is needed; what is left when the page goes away leaves with navigator.sendBeacon. A batch the
 * collector could not take now (network error, 429, 5xx) is sent again later with the same messageIds,
 * so the lake counts it once.
 */
(function (window, document) {
  "use strict";
  var VERSION = "1.0.0";
  var ANONYMOUS_COOKIE = "lm_aid";
  var USER_COOKIE = "lm_uid";
  var YEAR_SECONDS = 365 * 24 * 3600;
  var FLUSH_AT = 20;
  var FLUSH_MS = 1000;
  var MAX_QUEUE = 1000; // bounded: the oldest are dropped past it (a page offline for a long time)
  var script = document.currentScript;
  var state = { host: "", writeKey: "", queue: [], timer: null, sending: false, failures: 0 };

  function uuid() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map
      .call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); })
      .join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function readCookie(name) {
    var found = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return found ? decodeURIComponent(found[1]) : null;
  }

  function writeCookie(name, value, maxAge) {
    var secure = window.location.protocol === "https:" ? "; Secure" : "";
    document.cookie = name + "=" + encodeURIComponent(value) + "; Max-Age=" + maxAge + "; Path=/; SameSite=Lax" + secure;
  }

  function anonymousId() {
    var id = readCookie(ANONYMOUS_COOKIE);
    if (!id) {
      id = uuid();
      writeCookie(ANONYMOUS_COOKIE, id, YEAR_SECONDS);
    }
    return id;
  }

  function pageProperties() {
    return {
      path: window.location.pathname,
      referrer: document.referrer,
      search: window.location.search,
      title: document.title,
      url: window.location.href
    };
  }

  function context() {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { zone = undefined; }
    return {
      library: { name: "lakemail.js", version: VERSION },
      page: pageProperties(),
      userAgent: window.navigator.userAgent,
      locale: window.navigator.language,
      timezone: zone
    };
  }

  function enqueue(message) {
    message.messageId = uuid();
    message.anonymousId = anonymousId();
    var userId = readCookie(USER_COOKIE);
    if (userId && !message.userId) message.userId = userId;
    message.timestamp = new Date().toISOString();
    message.context = context();
    state.queue.push(message);
    if (state.queue.length > MAX_QUEUE) state.queue.splice(0, state.queue.length - MAX_QUEUE);
    if (state.queue.length >= FLUSH_AT) flush();
    else schedule(FLUSH_MS);
  }

  function schedule(ms) {
    if (state.timer) return;
    state.timer = window.setTimeout(function () { state.timer = null; flush(); }, ms);
  }

  function payload(batch) {
    return JSON.stringify({ batch: batch, sentAt: new Date().toISOString(), writeKey: state.writeKey });
  }

  function flush() {
    if (state.sending || !state.queue.length || !state.writeKey) return;
    var batch = state.queue.splice(0, FLUSH_AT);
    state.sending = true;
    window
      .fetch(state.host + "/v1/batch", {
        method: "POST",
        body: payload(batch),
        headers: { "Content-Type": "text/plain" },
        keepalive: true,
        credentials: "omit"
      })
      .then(function (response) {
        // 429 and 5xx: not kept now, try again; any other answer is final (a 400 will not get better)
        if (response.status === 429 || response.status >= 500) throw new Error("retry later");
        state.failures = 0;
      })
      .catch(function () {
        state.queue = batch.concat(state.queue);
        state.failures += 1;
      })
      .then(function () {
        state.sending = false;
        if (state.queue.length) schedule(Math.min(30000, FLUSH_MS * Math.pow(2, state.failures)));
      });
  }

  function beacon() {
    while (state.queue.length && state.writeKey) {
      var body = payload(state.queue.splice(0, FLUSH_AT));
      var sent = window.navigator.sendBeacon &&
        window.navigator.sendBeacon(state.host + "/v1/batch", new Blob([body], { type: "text/plain" }));
      if (!sent) {
        window.fetch(state.host + "/v1/batch", { method: "POST", body: body, keepalive: true, credentials: "omit",
          headers: { "Content-Type": "text/plain" } }).catch(function () {});
      }
    }
  }

  var lakemail = {
    VERSION: VERSION,
    load: function (writeKey, options) {
      state.writeKey = writeKey;
      state.host = ((options && options.host) || state.host).replace(/\/+$/, "");
      if (state.queue.length) schedule(0);
    },
    page: function (name, properties) {
      if (typeof name === "object" && name !== null) { properties = name; name = undefined; }
      var props = Object.assign(pageProperties(), properties || {});
      enqueue({ type: "page", name: name, properties: props });
    },
    track: function (event, properties) {
      enqueue({ type: "track", event: String(event), properties: properties || {} });
    },
    identify: function (userId, traits) {
      if (typeof userId === "object" && userId !== null) { traits = userId; userId = null; }
      if (userId) writeCookie(USER_COOKIE, String(userId), YEAR_SECONDS);
      enqueue({ type: "identify", userId: userId ? String(userId) : undefined, traits: traits || {} });
    },
    flush: flush,
    anonymousId: anonymousId,
    user: function () { return readCookie(USER_COOKIE); },
    reset: function () {
      writeCookie(ANONYMOUS_COOKIE, "", 0);
      writeCookie(USER_COOKIE, "", 0);
    }
  };

  if (script && script.src) state.host = new URL(script.src, window.location.href).origin;
  if (script && script.getAttribute("data-host")) state.host = script.getAttribute("data-host");
  window.lakemail = lakemail;
  if (script && script.getAttribute("data-write-key")) lakemail.load(script.getAttribute("data-write-key"));
  window.addEventListener("pagehide", beacon);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") beacon();
  });
})(window, document);
