"""Walking a paginated list of the simulator the way a client does: follow ``next``."""

from __future__ import annotations

from typing import Any

import httpx


def walk(
    client: httpx.Client,
    path: str,
    headers: dict[str, str],
    *,
    params: dict[str, Any] | None = None,
    count_key: str = "count",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every item of the list at ``path`` (``page_size=100``) and every page's envelope.

    Checks each page's envelope as it goes: the count is the same on every page, ``next``
    and ``previous`` link the pages in order with absolute URLs, no page holds more than 100.
    """
    url: str | None = str(
        client.build_request("GET", path, params={**(params or {}), "page_size": 100}).url
    )
    items: list[dict[str, Any]] = []
    pages: list[dict[str, Any]] = []
    previous: str | None = None
    while url is not None:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) >= {count_key, "next", "previous", "results"}
        assert len(page["results"]) <= 100
        if pages:
            assert page[count_key] == pages[0][count_key]
            assert page["previous"] is not None
            assert httpx.URL(page["previous"]).params["page"] == str(len(pages))
        else:
            assert page["previous"] is None
        if page["next"] is not None:
            assert page["next"].startswith("http://127.0.0.1:")
            assert httpx.URL(page["next"]).params["page"] == str(len(pages) + 2)
            assert len(page["results"]) == 100
        items.extend(page["results"])
        pages.append(page)
        previous, url = url, page["next"]
    assert previous is not None
    assert len(items) == pages[0][count_key]
    return items, pages
