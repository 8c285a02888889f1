"""Benchmark of the simulator's large seed: build time, one page read, a refresh's request count.

Builds the large seed (``sink.hubsim.seed.large_seed``: 5,000 members, 300 teams, 3,000
repositories by default) in this process, then serves it from a child process
(``start_process(seed="large")``, no latency) and reads, with one keep-alive client:

- one page (``page_size=100``) of the 5,000-member list, median of ``--reads`` reads, beside the
  cost of what the list did before (render every member row, each with its teams, per page);
- every list plan's refresh reads, page by page following ``next``, with the simulator's GET
  count per route (``GET /_sim/requests/counts?method=GET``) against the minimum
  ``ceil(n / 100)``.

    .venv/bin/python bench/hubsim_large.py [--members 5000] [--teams 300] [--repositories 3000]

Figures only; never a test.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

import httpx

from sink.hubsim import start_process
from sink.hubsim.seed import large_seed, load_state
from sink.hubsim.views import org_member

PASSWORD = "correct-horse-battery"  # alice's fake password from the default seed
OAT = "dckr_oat_mGUb8viwoTjRp7goKqWQNFHBziuPKlbZ"  # acme's fake "sink automation" token


def walk(client: httpx.Client, path: str, headers: dict[str, str]) -> tuple[int, int]:
    """(items, pages) of a list read at page_size=100 following ``next``."""
    url: str | None = f"{path}?page_size=100"
    items = pages = 0
    while url is not None:
        page = client.get(url, headers=headers).json()
        pages += 1
        if "data" in page:
            return len(page["data"]), pages
        items += len(page["results"])
        url = page["next"]
    return items, pages


def old_page_ms(sizes: dict[str, Any]) -> float:
    """What one members page cost before: every member rendered (teams looked up per row)."""
    state = load_state(large_seed(**sizes))
    org = state.org("acme")
    assert org is not None
    started = time.perf_counter()
    for username in sorted(org.roles):
        org_member(org, state.users[username])
    return (time.perf_counter() - started) * 1000


def main() -> None:
    """Print the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=5000)
    p.add_argument("--teams", type=int, default=300)
    p.add_argument("--repositories", type=int, default=3000)
    p.add_argument("--reads", type=int, default=50)
    args = p.parse_args()
    sizes = {"members": args.members, "teams": args.teams, "repositories": args.repositories}
    started = time.perf_counter()
    state = load_state(large_seed(**sizes))
    build = time.perf_counter() - started
    org = state.org("acme")
    assert org is not None
    print(
        f"large seed: {len(org.roles)} members, {len(org.teams)} teams "
        f"({sum(len(t.members) for t in org.teams.values())} memberships), "
        f"{len(state.repos['acme'])} repositories, {len(org.invites)} invites; "
        f"built in {build:.2f} s"
    )
    with start_process(seed=large_seed(**sizes)) as child, httpx.Client(base_url=child.url) as c:
        token = c.post("/v2/auth/token", json={"identifier": "alice", "secret": PASSWORD})
        alice = {"Authorization": f"Bearer {token.json()['access_token']}"}
        token = c.post("/v2/auth/token", json={"identifier": "acme", "secret": OAT})
        oat = {"Authorization": f"Bearer {token.json()['access_token']}"}
        times = []
        for i in range(args.reads):
            page = 1 + i % math.ceil(len(org.roles) / 100)
            t0 = time.perf_counter()
            c.get(f"/v2/orgs/acme/members?page_size=100&page={page}", headers=oat)
            times.append((time.perf_counter() - t0) * 1000)
        before = old_page_ms(sizes)
        now = statistics.median(times)
        print(
            f"one members page (100 of {len(org.roles)}): {now:.1f} ms median over HTTP; "
            f"rendering every row as before: {before:.1f} ms per page in process "
            f"({before / now:.0f}x)"
        )
        child.clear_requests()
        lists = [
            ("/v2/orgs/acme/members", oat),
            ("/v2/orgs/acme/invites", oat),
            ("/v2/orgs/acme/groups", oat),
            ("/v2/namespaces/acme/repositories", oat),
            ("/v2/access-tokens", alice),
            ("/v2/orgs/acme/access-tokens", alice),
        ]
        minimum = 0
        started = time.perf_counter()
        for path, headers in lists:
            items, _ = walk(c, path, headers)
            minimum += max(1, math.ceil(items / 100)) if "invites" not in path else 1
        for name in (n for n in org.teams):
            items, _ = walk(c, f"/v2/orgs/acme/groups/{name}/members", oat)
            minimum += max(1, math.ceil(items / 100))
        elapsed = time.perf_counter() - started
        counts = child.request_counts("GET")
        print(
            f"refresh of every list (teams' members included): {counts['total']} GETs, "
            f"minimum {minimum} ({counts['total'] / minimum:.2f}x), {elapsed:.2f} s sequential"
        )
        for route, count in counts["routes"].items():
            print(f"  {count:6d}  {route}")


if __name__ == "__main__":
    main()
