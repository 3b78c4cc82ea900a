"""``/api/docs/`` works offline: Swagger UI comes from our own static files, pinned."""

from __future__ import annotations

import re

from django.test import Client

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_the_docs_page_references_no_external_url_and_its_assets_answer():
    client = Client()
    page = client.get("/api/docs/")

    assert page.status_code == 200
    html = page.content.decode()
    # No scheme-qualified or protocol-relative address anywhere: nothing leaves this server.
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE), html
    assets = ASSET.findall(html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    assert any(a.endswith("swagger-ui.css") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/static/"), asset
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(_body(response)) > 0, asset
    # The schema it loads is ours.
    assert "/api/schema/" in html
    assert client.get("/api/schema/").status_code == 200
