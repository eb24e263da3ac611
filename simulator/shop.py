"""The simulated shop: its catalog (as landed in `catalog/`, and as shoppers see it) and its pages."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

SHOP = "https://shop.example"
CURRENCY = "EUR"
CATEGORIES: dict[str, tuple[str, ...]] = {
    "shoes": ("Runner", "Sneaker", "Boot", "Loafer", "Sandal"),
    "outerwear": ("Parka", "Rain Jacket", "Trench Coat", "Fleece", "Gilet"),
    "tops": ("Tee", "Shirt", "Hoodie", "Sweater", "Polo"),
    "bottoms": ("Jeans", "Chinos", "Shorts", "Joggers", "Skirt"),
    "bags": ("Backpack", "Tote", "Duffel", "Crossbody", "Wallet"),
    "accessories": ("Beanie", "Scarf", "Sunglasses", "Belt", "Watch"),
    "home": ("Mug", "Blanket", "Candle", "Lamp", "Cushion"),
    "beauty": ("Face Cream", "Shampoo", "Lip Balm", "Perfume", "Soap"),
}
PRICES = {
    "shoes": 49,
    "outerwear": 69,
    "tops": 12,
    "bottoms": 29,
    "bags": 19,
    "accessories": 9,
    "home": 7,
    "beauty": 5,
}
ADJECTIVES = ("Alpine", "Urban", "Classic", "Coastal", "Nordic", "Everyday", "Midnight", "Trail", "Vintage")
COLOURS = ("Navy", "Black", "Sand", "Olive", "Rust", "Grey", "Cream", "Forest")
BRANDS = ("Northwind", "Lumen", "Kiso", "Brava", "Oakline", "Veld")
CATEGORY_NAMES = tuple(CATEGORIES)
CATALOG_COLUMNS = ("product_id", "name", "category", "price", "currency", "stock", "url", "image_url")


def make_catalog(seed: int, size: int = 200) -> list[dict[str, Any]]:
    """A product catalog (landing `catalog/` rows), deterministic under `seed`."""
    rng = random.Random(f"lakemail-catalog-{seed}")
    categories = list(CATEGORIES)
    rows: list[dict[str, Any]] = []
    for index in range(size):
        category = categories[index % len(categories)]
        product_id = f"p-{index + 1:05d}"
        low = PRICES[category]
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(CATEGORIES[category])}, {rng.choice(COLOURS)}"
        price = round(rng.randint(low, low * 4) + rng.choice((0.0, 0.5, 0.95, 0.99)), 2)
        stock = 0 if rng.random() < 0.1 else rng.randint(1, 250)
        url, image_url = f"{SHOP}/p/{product_id}", f"{SHOP}/img/{product_id}.jpg"
        rows.append(
            {"product_id": product_id, "name": name, "category": category, "price": price}
            | {"currency": CURRENCY, "stock": stock, "url": url, "image_url": image_url}
        )
    return rows


def page(path: str, title: str) -> dict[str, str]:
    """A page of the shop as Segment's `context.page`."""
    return {"url": f"{SHOP}{path}", "path": path, "title": title}


CART_PAGE = page("/cart", "Your cart")
CHECKOUT_PAGE = page("/checkout", "Checkout")
ORDER_PAGE = page("/checkout/thank-you", "Thank you for your order")
LOGIN_PAGE = page("/login", "Log in")
SIGNUP_PAGE = page("/signup", "Create your account")


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    name: str
    category: str
    price: float
    in_stock: bool
    props: dict[str, Any]  # e-commerce v2 properties with quantity 1; shared, so never mutated
    page: dict[str, str]


def product(row: dict[str, Any]) -> Product:
    """A catalog row as shoppers see it: its event properties and its page, built once."""
    pid, category, name, price = row["product_id"], row["category"], row["name"], row["price"]
    props = {
        "product_id": pid,
        "sku": f"SKU-{category[:3].upper()}-{pid[2:]}",
        "category": category,
        "name": name,
        "brand": BRANDS[int(pid[2:]) % len(BRANDS)],
        "price": price,
        "currency": row["currency"],
        "url": row["url"],
        "image_url": row["image_url"],
        "quantity": 1,
    }
    product_page = {"url": row["url"], "path": f"/p/{pid}", "title": name}
    return Product(pid, name, category, price, row["stock"] > 0, props, product_page)


class Catalog:
    """The catalog's rows (as landed) and its products (as shoppers see them), by id and by category."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.products = [product(row) for row in rows]
        self.by_id = {p.product_id: p for p in self.products}
        self.by_category = {c: [p for p in self.products if p.category == c] for c in CATEGORIES}

    def replace(self, index: int, row: dict[str, Any]) -> None:
        """Row `index` becomes `row`; shoppers see it from now on (views, carts, orders)."""
        self.rows[index] = row
        new = product(row)
        old = self.by_id[new.product_id]
        self.by_id[new.product_id] = new
        for products in (self.products, self.by_category[new.category]):
            products[products.index(old)] = new
