"""`/lakemail.js` and the demo shop: a few pages over the simulator's catalog that use the snippet.

`GET /shop` (products), `/shop/p/{product_id}` (a product, add to cart), `/shop/cart`, `/shop/signup`:
a person clicks through, signs up with an email, and their welcome and cart emails reach the sandbox
inbox. Pages are rendered by one autoescaping Jinja environment; their behaviour is `/shop/shop.js`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import orjson
from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup

STATIC = Path(__file__).resolve().parent / "static"
SHOWN_PRODUCTS = 24  # the home page's share of the catalog, in stock first
SCRIPT_HEADERS = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}

_TEMPLATES = {
    "base.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{% block title %}{% endblock %} - Lakemail Demo Shop</title>
<style>
 body { font: 15px/1.5 system-ui, sans-serif; margin: 0; color: #1d2433; background: #fafafa; }
 header { background: #1d2433; padding: .8rem 1.5rem; } header a { color: #fff; margin-right: 1.2rem; }
 main { max-width: 960px; margin: 1.5rem auto; padding: 0 1.5rem; }
 ul.grid { list-style: none; padding: 0; display: grid; grid-template-columns: repeat(4, 1fr); gap: 1rem; }
 .tile { background: #fff; border: 1px solid #e3e6eb; border-radius: 6px; padding: .8rem; }
 .swatch { height: 90px; border-radius: 4px; background: #e8ecf6; display: flex; align-items: center;
           justify-content: center; color: #5b6475; text-transform: uppercase; font-size: 12px; }
 button { font: inherit; padding: .5rem 1.2rem; border: 0; border-radius: 4px;
          background: #2456d6; color: #fff; }
 .note { color: #1a7f37; }
</style></head>
<body data-page="{{ kind }}"><header><a href="/shop">Shop</a><a id="cart-link" href="/shop/cart">Cart</a>
<a id="signup-link" href="/shop/signup">Sign up</a></header>
<main>{% block main %}{% endblock %}</main>
<script src="/lakemail.js" data-write-key="{{ write_key }}"></script><script src="/shop/shop.js"></script>
</body></html>
""",
    "home.html": """{% extends "base.html" %}{% block title %}Home{% endblock %}{% block main %}
<h1>Lakemail Demo Shop</h1><ul class="grid">{% for p in products %}
<li class="tile"><a class="product-link" href="/shop/p/{{ p.product_id }}">
<div class="swatch">{{ p.category }}</div>
{{ p.name }}</a><br>{{ "%.2f"|format(p.price) }} {{ p.currency }}</li>{% endfor %}</ul>{% endblock %}""",
    "product.html": """{% extends "base.html" %}{% block title %}{{ p.name }}{% endblock %}{% block main %}
<div class="swatch">{{ p.category }}</div><h1>{{ p.name }}</h1>
<p>{{ "%.2f"|format(p.price) }} {{ p.currency }} - {{ "in stock" if p.stock else "sold out" }}</p>
<button id="add-to-cart">Add to cart</button> <span id="added" class="note" hidden></span>
<script id="product" type="application/json">{{ product_json }}</script>{% endblock %}""",
    "cart.html": """{% extends "base.html" %}{% block title %}Your cart{% endblock %}{% block main %}
<h1>Your cart</h1><p id="cart-empty" hidden>Your cart is empty.</p><ul id="cart-lines"></ul>
<p>Total: <span id="cart-total">0.00</span></p>
<a href="/shop/signup">Sign up to keep your cart</a>{% endblock %}""",
    "signup.html": """{% extends "base.html" %}{% block title %}Sign up{% endblock %}{% block main %}
<h1>Create your account</h1><form id="signup-form">
<p><label>Email <input type="email" name="email" required></label></p>
<p><label>First name <input type="text" name="first_name"></label></p>
<p><label><input type="checkbox" name="consent" id="consent"> Email me offers and reminders</label></p>
<button id="signup" type="submit">Sign up</button></form>
<p id="signed-up" class="note" hidden></p>{% endblock %}""",
}
_ENV = jinja2.Environment(
    loader=jinja2.DictLoader(_TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
)


def add_snippet_route(app: FastAPI) -> None:
    """`GET /lakemail.js`: the snippet, read once."""
    snippet = (STATIC / "lakemail.js").read_bytes()

    @app.get("/lakemail.js")
    async def lakemail_js() -> Response:
        return Response(snippet, media_type="text/javascript", headers=SCRIPT_HEADERS)


def _product(row: dict[str, Any]) -> dict[str, Any]:
    """A catalog row as the page shows it and its events carry it (e-commerce v2 properties)."""
    pid, category = str(row["product_id"]), str(row["category"])
    sku = f"SKU-{category[:3].upper()}-{pid.removeprefix('p-')}"
    keys = ("product_id", "name", "category", "price", "currency", "stock", "url", "image_url")
    return {**{key: row[key] for key in keys}, "sku": sku}


def add_shop_routes(app: FastAPI, catalog: list[dict[str, Any]], write_key: str) -> None:
    """The demo shop's pages over `catalog` (rows as landed in `catalog/`), tracking with `write_key`."""
    products = {str(row["product_id"]): _product(row) for row in catalog}
    shown = sorted(products.values(), key=lambda p: not p["stock"])[:SHOWN_PRODUCTS]
    shop_js = (STATIC / "shop.js").read_bytes()

    def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = _ENV.get_template(f"{name}.html").render(kind=name, write_key=write_key, **values)
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

    @app.get("/shop")
    async def home() -> HTMLResponse:
        return page("home", products=shown)

    @app.get("/shop/p/{product_id}")
    async def product(product_id: str) -> HTMLResponse:
        found = products.get(product_id)
        if found is None:
            return page("home", 404, products=shown)
        # JSON inside <script>: with every `<` escaped, no `</script>` can end it early
        as_json = orjson.dumps(found).decode().replace("<", "\\u003c")
        return page("product", p=found, product_json=Markup(as_json))

    @app.get("/shop/cart")
    async def cart() -> HTMLResponse:
        return page("cart")

    @app.get("/shop/signup")
    async def signup() -> HTMLResponse:
        return page("signup")

    @app.get("/shop/shop.js")
    async def script() -> Response:
        return Response(shop_js, media_type="text/javascript", headers=SCRIPT_HEADERS)
