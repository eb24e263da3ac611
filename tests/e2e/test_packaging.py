"""An installed lakemail renders its emails: the templates are package data, not a folder of the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the rendering needs of lakemail; setuptools lays these out as a wheel holds them.
PACKAGES = ("transforms", "resources", "templates")
RENDER = """
import resources.templates as module
from transforms.sends.content import Shop, build_content
from transforms.sends.catalog import Catalog
import polars as pl
from datetime import UTC, datetime, timedelta
from transforms.schema import CATALOG_SCHEMA

renderer = module.TemplateRenderer()
shop = Shop("Maison Demo", "https://shop.example", "1 Demo Street", "help@shop.example")
now = datetime(2026, 11, 20, tzinfo=UTC)
content = build_content(
    "welcome", profile={"email": "ada@example.com", "first_name": "Ada", "as_of": now}, trigger={},
    catalog=Catalog.of(pl.DataFrame(schema=CATALOG_SCHEMA)), bestsellers=[], now=now, shop=shop,
    staleness=timedelta(days=2),
)
parts = renderer.render(content, kind="welcome", variant="a", unsubscribe_url="https://shop.example/u/t")
print(module.__file__)
print(renderer.environment.get_template("welcome.html.j2").filename)
print(parts.subject)
"""


def build_installed_tree(tmp_path: Path) -> Path:
    """lakemail's packages as an install lays them out (`build_py`, the wheel's contents), under tmp_path."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    installed = tmp_path / "site-packages"
    build = "import setuptools; setuptools.setup(script_args=['-q', 'build_py', '--build-lib', %r])"
    done = subprocess.run(
        [sys.executable, "-c", build % str(installed)], cwd=source, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return installed


def test_an_installed_copy_holds_the_templates_and_renders_from_them(tmp_path: Path) -> None:
    installed = build_installed_tree(tmp_path)
    shipped = {p.name for p in (installed / "templates").iterdir()}
    assert {p.name for p in (ROOT / "templates").glob("*.j2")} <= shipped
    assert "welcome.html.j2" in shipped and "layout.html.j2" in shipped
    # Rendered from elsewhere, with only the installed copy of lakemail on the path.
    env = {**os.environ, "PYTHONPATH": str(installed)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", RENDER], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    module, template, subject = done.stdout.splitlines()
    assert Path(module).is_relative_to(installed) and Path(template).is_relative_to(installed)
    assert subject
