/* The demo shop's behaviour: the cart in localStorage, the e-commerce v2 events through lakemail.js. */
(function (window, document) {
  "use strict";
  var CART = "lm_demo_cart";
  var page = document.body.getAttribute("data-page");

  function cart() {
    try {
      var stored = JSON.parse(window.localStorage.getItem(CART));
      if (stored && stored.cart_id && Array.isArray(stored.items)) return stored;
    } catch (e) { /* a broken cart starts again */ }
    return { cart_id: "cart-" + lakemail.anonymousId().slice(0, 8) + "-" + Date.now().toString(36), items: [] };
  }

  function saveCart(value) { window.localStorage.setItem(CART, JSON.stringify(value)); }

  function product() {
    var data = document.getElementById("product");
    return data ? JSON.parse(data.textContent) : null;
  }

  function productProperties(p, cartId) {
    var props = {
      product_id: p.product_id, sku: p.sku, category: p.category, name: p.name, price: p.price,
      currency: p.currency, url: p.url, image_url: p.image_url, quantity: 1
    };
    if (cartId) props.cart_id = cartId;
    return props;
  }

  function show(id, text) {
    var node = document.getElementById(id);
    node.textContent = text;
    node.hidden = false;
  }

  function renderCart() {
    var current = cart();
    var list = document.getElementById("cart-lines");
    var total = 0;
    current.items.forEach(function (item) {
      var line = document.createElement("li");
      line.textContent = item.quantity + " x " + item.name + " (" + item.price.toFixed(2) + " " + item.currency + ")";
      list.appendChild(line);
      total += item.price * item.quantity;
    });
    document.getElementById("cart-total").textContent = total.toFixed(2);
    document.getElementById("cart-empty").hidden = current.items.length > 0;
    lakemail.track("Cart Viewed", {
      cart_id: current.cart_id,
      products: current.items.map(function (item) { return productProperties(item, null); })
    });
  }

  function signUp(event) {
    event.preventDefault();
    var form = event.target;
    var email = form.email.value.trim();
    if (!email) return;
    var userId = lakemail.user() || "web-" + lakemail.anonymousId().replace(/-/g, "").slice(0, 16);
    var consent = form.consent.checked;
    lakemail.identify(userId, { email: email, first_name: form.first_name.value.trim() || undefined, marketing_consent: consent });
    lakemail.track("Signed Up", { method: "email" });
    lakemail.flush();
    form.hidden = true;
    show("signed-up", consent
      ? "Welcome! Your welcome email is on its way: watch the sandbox inbox. Leave something in your cart, and a reminder follows."
      : "Welcome! You did not agree to marketing emails, so none will come.");
  }

  lakemail.page(document.title);
  if (page === "product") {
    var p = product();
    lakemail.track("Product Viewed", productProperties(p, null));
    document.getElementById("add-to-cart").addEventListener("click", function () {
      var current = cart();
      var line = current.items.filter(function (item) { return item.product_id === p.product_id; })[0];
      if (line) line.quantity += 1;
      else current.items.push(Object.assign(productProperties(p, null), { quantity: 1 }));
      saveCart(current);
      lakemail.track("Product Added", productProperties(p, current.cart_id));
      show("added", "Added to your cart.");
    });
  } else if (page === "cart") {
    renderCart();
  } else if (page === "signup") {
    document.getElementById("signup-form").addEventListener("submit", signUp);
  }
})(window, document);
