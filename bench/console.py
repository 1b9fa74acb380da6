"""Console page times: the overview with 1,000 assets and a month of events, and a contract page over
1,000 assets × 1 year, each served time against the bare computation it shows, in the same run.

    .venv/bin/python bench/console.py [--assets 1000] [--repeat 5]

The store is bench/report_time.py's (same generator, same contract). The console app runs in this process
(Starlette's TestClient: no network, no browser), logged in as an admin. "bare" is what the page cannot
avoid: for the overview the current states, open incidents' clocks and agents' health; for the contract page
the month's report (`reports()`), plus the eleven months of its trend (cold: the first view computes them,
warm: later views reuse them while the data stays the same). Targets: overview < 200 ms, contract < 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.testclient import TestClient

from bench.report_time import DAY, contract_book, load
from collector.console import pages, queries
from collector.console.app import Deps, create_console
from collector.console.users import User, add_user, get_user
from collector.reporting import reports
from collector.store.base import Store
from collector.store.sqlite import SqliteStore
from linewarden.book import ContractBook
from linewarden.config.collector import ConsoleConfig
from linewarden.sla.periods import month_containing


def ms(fn: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t0) * 1000)
    return out


def fmt(values: list[float]) -> str:
    return f"median {statistics.median(values):7.1f} ms, max {max(values):7.1f} ms"


def build(tmp: Path, name: str, assets: int, days: int, end: int) -> tuple[SqliteStore, ContractBook, float]:
    folder = tmp / name
    folder.mkdir()
    store = SqliteStore(folder / "collector.db")
    store.migrate()
    t0 = time.perf_counter()
    crit = load(store, assets, end - days * DAY, end)
    return store, contract_book(folder, [a for a, c in crit.items() if c == "critical"][:3]), time.perf_counter() - t0


def console(store: SqliteStore, book: ContractBook, end: int) -> tuple[TestClient, Deps, User]:
    settings = ConsoleConfig(mfa_required_roles=[])  # the bench's admin logs in with its password alone
    app = create_console(store, book, lambda: end, settings, "UTC")
    add_user(store, "bench", "bench password", "admin", None, (), end, "bench", "bench")
    client = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)
    pre = client.get("/login").text.split('name="pre" value="', 1)[1].split('"', 1)[0]
    assert client.post("/login", data={"pre": pre, "username": "bench", "password": "bench password"},
                       follow_redirects=False).status_code == 303
    user = get_user(store, "bench")
    assert user is not None
    return client, Deps(store, book, lambda: end, "UTC", settings, None, end, 3, store.path.parent / "evidence"), user


def served(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200 and "<h1>" in r.text and "Not " not in r.text.split("<h1>", 1)[1][:12], r.text[:300]


def add_state_change(store: Store, seq: int, at: int) -> None:
    """A state change at `at`, as live ingest would add: the store's live version moves on."""
    with store.transaction() as tx:
        tx.sql.execute(
            "INSERT INTO state_changes (site, agent, epoch, seq, target, asset, from_state, to_state,"
            " reason, at) VALUES ('s', 'a', 'bench', ?, 't', 'x', 'UP', 'DOWN', 'bench', ?)",
            (seq, at),
        )


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--assets", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    end = int(time.time() * 1000)
    with tempfile.TemporaryDirectory(prefix="lw-console-bench-") as tmp:
        store, book, load_s = build(Path(tmp), "month", args.assets, 31, end)
        print(f"console bench: {args.assets:,} assets; a month of history loaded in {load_s:.0f} s")
        client, deps, user = console(store, book, end)

        def bare_overview() -> None:
            queries.current_assets(store)
            pages.open_incidents(deps, user)

        print(f"overview  bare   {fmt(ms(bare_overview, args.repeat))}   (states and open incidents' clocks)")
        seq = [0]

        def change() -> None:  # a state change now: the store's live version moves on
            seq[0] += 1
            add_state_change(store, seq[0], end)

        def first_after_change() -> None:
            change()
            served(client, "/")

        print(f"overview  served {fmt(ms(first_after_change, args.repeat))}   (target < 200 ms; the first console"
              " after a change)")
        print(f"overview  shared {fmt(ms(lambda: served(client, '/'), args.repeat))}   (every other console of the"
              " scope within 1 s of it)")
        store.close()

        store, book, load_s = build(Path(tmp), "year", args.assets, 365, end)
        print(f"a year of history loaded in {load_s:.0f} s")
        client, deps, user = console(store, book, end)
        label = month_containing(month_containing(end, "UTC").start_ms - 1, "UTC").label  # last whole month
        page = f"/contracts/bench?period={label}"
        bare = ms(lambda: reports(store, book, label, "bench", now_ms=end), args.repeat)
        print(f"contract  bare   {fmt(bare)}   ({label}'s report alone, a whole month)")
        cold = ms(lambda: served(client, page), 1)[0]
        print(f"contract  served cold {cold:8.1f} ms   (first view: the 11 earlier trend months computed too)")
        warm = ms(lambda: served(client, page), args.repeat)
        print(f"contract  served warm {fmt(warm)}   (target < 1 s; whole months reused)")
        seq = [10_000]

        def after_new_data() -> None:  # live ingest: a state change now; whole months stay, this month's is new
            seq[0] += 1
            add_state_change(store, seq[0], end)
            served(client, page)

        after = fmt(ms(after_new_data, args.repeat))
        print(f"contract  served after new data {after}   (target < 1 s; new data in the month under way)")
        deps.reports.clear()
        t0 = time.perf_counter()
        pages.warm_reports(deps, threading.Event())
        print(f"warm-up at start (trend months of the contract, in a thread): {time.perf_counter() - t0:.1f} s")
        store.close()


if __name__ == "__main__":
    main()
