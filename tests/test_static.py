"""Static files the Django way: source files with DEBUG on; hashed, compressed, cached for a
year with DEBUG off, collected by `serve` itself; and a favicon wherever a browser looks."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.processes import LinnetProcess, free_port, migrate

pytestmark = pytest.mark.slow


def test_pages_name_their_static_files_and_they_are_served(client):
    page = client.get("/")
    assert page.status_code == 200
    for path in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.content.decode()):
        assert client.get(path).status_code == 200, path


def test_favicon_redirects_to_the_static_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].startswith("/static/linnet/favicon")


def test_production_serve_collects_hashed_compressed_files(tmp_path):
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'linnet.sqlite3'}",
        "REDIS_URL": "",
        "DEBUG": "0",
        "SECRET_KEY": "static-files-test-only",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    migrate(env)
    port = free_port()
    server = LinnetProcess("serve", "--port", str(port), env=env).start()
    try:
        server.wait_for_port(port, timeout=60)
        base = f"http://127.0.0.1:{port}"
        page = httpx.get(base + "/").text
        module = re.search(r'src="(/static/linnet/live\.[0-9a-f]{12}\.js)"', page)
        assert module, page[:500]
        response = httpx.get(base + module.group(1), headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200
        assert "immutable" in response.headers["cache-control"]
        assert response.headers["content-encoding"] == "gzip"
        # Module imports point at hashed names too, so a page never mixes old and new code.
        imports = re.findall(r'from "(\./[^"]+)"', response.text)
        assert imports and all(re.search(r"\.[0-9a-f]{12}\.js$", name) for name in imports)
        icon = httpx.get(base + "/favicon.ico", follow_redirects=True)
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")
    finally:
        assert server.stop() == 0, server.output()
