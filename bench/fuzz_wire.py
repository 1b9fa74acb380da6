"""Wire fuzz: generated agent messages, mutated, through the collector's real ingest path; does anything crash?

    .venv/bin/python bench/fuzz_wire.py [--payloads 10000] [--seed 1] [--mqtt | --postgres URL]

Payloads: hypothesis strategies derived from the wire Structs' JSON Schemas (msgspec) (linewarden/wire.py: `EventBatch`
with every event type, `Birth`, `Death`), mostly for the agent the topic names so they get past the sender
check. Each document goes out as is and with 4 different mutations of: bit flip, truncation, type swap (a
value replaced by one of another JSON type), huge int (±2^63, 2^64, 10^30 in place of an int), NUL characters
in a string, deep nesting (a value wrapped in 2,000 lists or objects), or an oversized string (1 MB).

Path: `Ingest.handle` with a real SQLite store (the collector's own migrations) in a temp dir (`--postgres URL`:
a PostgreSQL store in a schema of its own, which refuses what SQLite takes, such as a NUL in text); with `--mqtt`,
over a real Mosquitto to a `CollectorService` in this process instead, after which a valid birth and batch
must still be acked (ingest not stalled). A crash is an exception out of `Ingest.handle` (direct) or an error
the MQTT adapter logged for a message handler (`--mqtt`). Prints per mutation: sent, accepted, dead-lettered,
crashed; the first crash of each kind with its payload's start; the dead-letter reasons, grouped.
Goal: 0 crashes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import msgspec  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from linewarden.wire import Birth, Death, EventBatch, WireModel  # noqa: E402

SITE, AGENT, EPOCH, BOOT = "fuzz-site", "fuzz-agent", "e0", "b0"
TOPICS = {"events": f"lw/v1/{SITE}/{AGENT}/events", "birth": f"lw/v1/{SITE}/{AGENT}/birth",
          "death": f"lw/v1/{SITE}/{AGENT}/death"}
HUGE_INTS = (2**63, 2**63 - 1, 2**64, -(2**63) - 1, 10**30, -1)
NEST_DEPTH = 2000
BIG_STRING = 1 << 20
_NEST = "\u2063nest-here\u2063"
_ANY_TYPE: tuple[Json, ...] = (None, True, 0, -7, 1.5, "", "s", [], {}, [1], {"k": 1})
PER_DOCUMENT = 5  # payloads per generated document: as is, and 4 different mutations of it
MUTATIONS = ("none", "bit_flip", "truncate", "type_swap", "huge_int", "nul", "deep_nesting", "big_string")

Json = Any


# ---------------------------------------------------------------- strategies from the models' JSON Schemas


def from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Json]:
    """A strategy for the JSON values `schema` allows: the subset of JSON Schema msgspec emits for wire.py."""
    if "$ref" in schema:
        return st.deferred(lambda: from_schema(defs[schema["$ref"].rsplit("/", 1)[1]], defs))
    for union in ("oneOf", "anyOf"):
        if union in schema:
            return st.one_of([from_schema(s, defs) for s in schema[union]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            pattern = schema["pattern"].removeprefix(r"\A(?:").removesuffix(r")\Z")
            return st.from_regex(rf"\A{pattern[:-1]}{{0,12}}\Z" if pattern.endswith("*") else schema["pattern"],
                                 fullmatch=True)
        return st.text(max_size=min(schema.get("maxLength", 16), 16))
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -(2**31)))
        return st.integers(min_value=low, max_value=schema.get("maximum", 2**53))
    if kind == "number":
        return st.floats(min_value=schema.get("minimum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(schema.get("items", {}), defs)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=3)
    if kind == "object":
        props = schema.get("properties", {})
        if not props:
            extra = schema.get("additionalProperties", {})
            values = from_schema(extra, defs) if isinstance(extra, dict) and extra else st.integers()
            return st.dictionaries(st.text(max_size=12), values, max_size=3)
        # a field with a constant (a discriminator such as an event's `type`) is always sent, as agents do
        required = set(schema.get("required", ())) | {k for k, v in props.items() if "const" in v}
        return st.fixed_dictionaries(
            {k: from_schema(v, defs) for k, v in props.items() if k in required},
            optional={k: from_schema(v, defs) for k, v in props.items() if k not in required},
        )
    return st.one_of(st.none(), st.integers(), st.text(max_size=8))


def model_strategy(model: type[WireModel]) -> st.SearchStrategy[Json]:
    schema = msgspec.json.schema(model)
    return from_schema(schema, schema.get("$defs", {}))


def for_our_agent(message: dict[str, Any], keep_sender: bool) -> dict[str, Any]:
    """Most payloads name the topic's agent (or the sender check stops them before anything deeper)."""
    if not keep_sender:
        message.update(site=SITE, agent=AGENT, epoch=EPOCH, boot=BOOT)
    return message


# ---------------------------------------------------------------- mutations


def json_paths(value: Json, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Json]]:
    found = [(path, value)]
    if isinstance(value, dict):
        for k, v in value.items():
            found += json_paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += json_paths(v, (*path, i))
    return found


def _replace(doc: Json, path: tuple[Any, ...], new: Json) -> Json:
    if not path:
        return new
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return doc


def mutate(doc: Json, kind: str, rnd: random.Random) -> bytes:
    if kind in ("type_swap", "huge_int", "nul", "deep_nesting", "big_string"):
        paths = json_paths(doc)
        if kind == "huge_int":
            ints = [p for p, v in paths if isinstance(v, int) and not isinstance(v, bool)]
            if ints:
                doc = _replace(doc, rnd.choice(ints), rnd.choice(HUGE_INTS))
        elif kind in ("nul", "big_string"):
            strings = [(p, v) for p, v in paths if isinstance(v, str)]
            if strings:
                path, text = rnd.choice(strings)
                cut = rnd.randint(0, len(text))
                insert = "\0" if kind == "nul" else "x" * BIG_STRING
                doc = _replace(doc, path, text[:cut] + insert + text[cut:])
        else:
            path, value = rnd.choice(paths[1:] or paths)
            if kind == "type_swap":
                others = [v for v in _ANY_TYPE if type(v) is not type(value)]
                doc = _replace(doc, path, rnd.choice(others))
            else:  # spliced in as text: json.dumps itself would hit the recursion limit
                inner = json.dumps(value, separators=(",", ":"))
                opens = "".join("[" if rnd.random() < 0.5 else '{"n":' for _ in range(NEST_DEPTH))
                closes = "".join("]" if c == "[" else "}" for c in reversed(opens.replace('{"n":', "{")))
                doc = _replace(doc, path, _NEST)
                return json.dumps(doc, separators=(",", ":")).replace(
                    json.dumps(_NEST), opens + inner + closes).encode()
    data = json.dumps(doc, separators=(",", ":")).encode()
    if kind == "bit_flip" and data:
        flipped = bytearray(data)
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(len(flipped))
            flipped[i] ^= 1 << rnd.randrange(8)
        return bytes(flipped)
    if kind == "truncate" and data:
        return data[: rnd.randrange(len(data))]
    return data


@dataclass(frozen=True)
class Payload:
    topic: str
    data: bytes
    mutation: str


def generate(count: int, seed: int) -> list[Payload]:
    """`count` payloads: documents from the model strategies, each sent as is and with PER_DOCUMENT - 1
    different mutations (hypothesis draws the documents and the seed of every mutation's choices)."""
    messages = st.one_of(
        st.tuples(st.just("events"), model_strategy(EventBatch)),
        st.tuples(st.just("birth"), model_strategy(Birth)),
        st.tuples(st.just("death"), model_strategy(Death)),
    )
    out: list[Payload] = []

    def run(run_seed: int) -> None:
        @hypothesis_seed(run_seed)
        @settings(max_examples=-(-(count - len(out)) // PER_DOCUMENT), database=None, deadline=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(message=messages, rnd=st.randoms(use_true_random=False))
        def one(message: tuple[str, dict[str, Any]], rnd: random.Random) -> None:
            kind, doc = message
            rnd = random.Random(rnd.getrandbits(64))  # positions from one draw: hypothesis's buffer stays small
            for_our_agent(doc, keep_sender=rnd.random() < 0.1)  # one in ten keeps the generated (foreign) sender
            text = json.dumps(doc)
            for mutation in ["none", *rnd.sample(MUTATIONS[1:], PER_DOCUMENT - 1)]:
                out.append(Payload(TOPICS[kind], mutate(json.loads(text), mutation, rnd), mutation))

        one()

    run_seed = seed
    while len(out) < count:  # hypothesis may stop a run early: top up with the next seed
        run(run_seed)
        run_seed += 1
    return out[:count]


# ---------------------------------------------------------------- results


@dataclass
class Results:
    sent: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    crashed: Counter[str] = field(default_factory=Counter)
    first_crash: dict[str, str] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    valid_reasons: Counter[str] = field(default_factory=Counter)  # why unmutated documents were dead-lettered
    seconds: float = 0.0
    still_acking: bool | None = None

    def crash(self, payload: Payload, what: str) -> None:
        self.crashed[payload.mutation] += 1
        self.first_crash.setdefault(what, f"{payload.topic} {payload.data[:160]!r}")


def reason_group(reason: str) -> str:
    """Dead-letter reasons without their varying parts (ids, numbers, quoted input)."""
    import re

    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", reason)
    text = re.sub(r"payload names \S+", "payload names …", text)
    text = re.sub(r"\d+", "N", text)
    return text[:90]


def dead_letters(store: Any) -> tuple[int, Counter[str]]:
    with store.reader() as sql:
        rows = sql.query("SELECT reason FROM dead_letters")
    return len(rows), Counter(reason_group(r["reason"]) for r in rows)


# ---------------------------------------------------------------- direct: Ingest.handle


@contextlib.contextmanager
def _store(directory: Path, postgres: str | None) -> Iterator[Any]:
    """A migrated store: SQLite in `directory`, or a schema of its own on PostgreSQL at `postgres` (dropped after)."""
    if postgres is None:
        from collector.store.sqlite import SqliteStore

        yield SqliteStore(directory / "collector.db")
        return
    import uuid

    import psycopg

    from collector.store.postgres import PostgresStore

    schema = f"lw_fuzz_{uuid.uuid4().hex[:12]}"
    try:
        yield PostgresStore(postgres, schema=schema)
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def run_direct(payloads: Sequence[Payload], directory: Path, postgres: str | None = None) -> Results:
    with _store(directory, postgres) as store:
        return _run_direct(payloads, store)


def _run_direct(payloads: Sequence[Payload], store: Any) -> Results:
    from collector.ingest import Ingest
    from linewarden.config.collector import LivenessConfig

    store.migrate()
    ingest = Ingest(store, LivenessConfig(), watching_since=0)
    results = Results()
    started = time.monotonic()
    dead_before = 0
    try:
        for p in payloads:
            results.sent[p.mutation] += 1
            try:
                ingest.handle(p.topic, p.data, int(time.time() * 1000))
            except Exception as exc:  # a crash: exactly what this bench looks for
                results.crash(p, f"{type(exc).__name__}: {str(exc)[:120]}")
                continue
            with store.reader() as sql:
                dead_now = int(sql.query("SELECT COUNT(*) AS n FROM dead_letters")[0]["n"])
            if dead_now > dead_before:
                results.dead[p.mutation] += 1
                if p.mutation == "none":
                    with store.reader() as sql:
                        last = sql.query("SELECT reason FROM dead_letters ORDER BY id DESC LIMIT 1")
                    results.valid_reasons[reason_group(last[0]["reason"])] += 1
            dead_before = dead_now
        results.seconds = time.monotonic() - started
        _, results.reasons = dead_letters(store)
    finally:
        store.close()
    return results


# ---------------------------------------------------------------- over MQTT: a real collector


class _Crashes(logging.Handler):
    """Errors logged with a traceback: a message handler or a collector task that raised."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


async def _run_mqtt(payloads: Sequence[Payload], directory: Path) -> Results:
    from collector.service import CollectorService
    from collector.store.sqlite import SqliteStore
    from linewarden.config.base import BrokerConfig
    from linewarden.mqtt import MqttClient
    from linewarden.wire import Ack, HeartbeatBody, HeartbeatEvent, ack_topic, decode, encode
    from simulators.broker import Mosquitto
    from tests.integration.ticketing_helpers import book, collector_config

    crashes = _Crashes()
    logging.getLogger().addHandler(crashes)
    results = Results()
    with Mosquitto() as broker:
        store = SqliteStore(directory / "collector.db")
        store.migrate()
        service = CollectorService(collector_config(broker.host, broker.port, directory, "fuzz"), store, book=book())
        await service.start()
        sender = MqttClient(BrokerConfig(host=broker.host, port=broker.port), client_id="fuzz-sender")
        await sender.start()
        try:
            await _until(lambda: service.mqtt.connected and sender.connected, 30, "connected")
            started = time.monotonic()
            window: list[asyncio.Future[None]] = []
            for p in payloads:
                results.sent[p.mutation] += 1
                window.append(sender.publish(p.topic, p.data))
                if len(window) >= 50:
                    await asyncio.gather(*window, return_exceptions=True)
                    window.clear()
            await asyncio.gather(*window, return_exceptions=True)
            # still ingesting? a valid birth and batch for a fresh agent must be acked after all of the above
            acks: list[Ack] = []
            probe = "fuzz-probe"
            sender.subscribe(ack_topic(SITE, probe), lambda _t, data: acks.append(decode(Ack, data)) if data else None)
            birth = Birth(agent=probe, site=SITE, epoch="p1", boot="p1", ts=int(time.time() * 1000), version="fuzz",
                          config_hash="x", targets=[])
            batch = EventBatch(agent=probe, site=SITE, epoch="p1", boot="p1", events=[HeartbeatEvent(
                seq=1, ts=int(time.time() * 1000), body=HeartbeatBody(interval_s=60, states={}))])
            await sender.publish(f"lw/v1/{SITE}/{probe}/birth", encode(birth))
            await sender.publish(f"lw/v1/{SITE}/{probe}/events", encode(batch))
            try:
                await _until(lambda: any(a.through >= 1 for a in acks), 120, "the probe's ack")
                results.still_acking = True
            except TimeoutError:
                results.still_acking = False
            results.seconds = time.monotonic() - started
        finally:
            await sender.stop()
            await service.stop()
            logging.getLogger().removeHandler(crashes)
        count, results.reasons = dead_letters(store)
        results.dead["(all, over MQTT)"] = count
        store.close()
    for record in crashes.records:
        kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else "?"
        results.crashed["(logged)"] += 1
        trace = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else ""
        results.first_crash.setdefault(f"{record.name}: {record.getMessage()[:80]} ({kind})", trace[-300:])
    return results


async def _until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting {timeout:g} s for {what}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- report


def report(results: Results, payloads: Sequence[Payload], command: str, mqtt: bool, postgres: bool) -> None:
    print(f"\n{command}")
    path = "MQTT to a CollectorService" if mqtt else f"Ingest.handle ({'PostgreSQL' if postgres else 'SQLite'} store)"
    print(f"{len(payloads)} payloads in {results.seconds:.1f} s through {path}")
    print(f"{'mutation':<14} {'sent':>6} {'dead-lettered':>14} {'crashed':>8}")
    for m in MUTATIONS:
        print(f"{m:<14} {results.sent[m]:>6} {results.dead[m] if not mqtt else '-':>14} "
              f"{results.crashed[m] if not mqtt else '-':>8}")
    total_dead = sum(results.dead.values())
    total_crashed = sum(results.crashed.values())
    print(f"{'total':<14} {sum(results.sent.values()):>6} {total_dead:>14} {total_crashed:>8}")
    if results.still_acking is not None:
        print(f"after the fuzz, a valid birth and batch were {'acked' if results.still_acking else 'NOT acked'}")
    print(f"\ncrashes: {total_crashed} (goal 0)")
    for what, sample in results.first_crash.items():
        print(f"  {what}\n    first: {sample}")
    if results.valid_reasons:
        print("\nunmutated documents dead-lettered, why (grouped, top 8):")
        for reason, n in results.valid_reasons.most_common(8):
            print(f"  {n:>6}  {reason}")
    print("\ndead-letter reasons (grouped, top 15):")
    for reason, n in results.reasons.most_common(15):
        print(f"  {n:>6}  {reason}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--payloads", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mqtt", action="store_true", help="over a real Mosquitto to a CollectorService")
    parser.add_argument("--postgres", metavar="URL", help="direct mode on PostgreSQL (a schema of its own, dropped)")
    args = parser.parse_args(argv)
    if args.mqtt and args.postgres:
        parser.error("--postgres is for the direct mode (without --mqtt)")
    screen = logging.StreamHandler()
    screen.setLevel(logging.CRITICAL)  # dead letters log a warning each, crashes an error: the counts say enough
    logging.basicConfig(level=logging.ERROR, handlers=[screen])
    started = time.monotonic()
    payloads = generate(args.payloads, args.seed)
    print(f"generated {len(payloads)} payloads in {time.monotonic() - started:.1f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="lw-fuzz-") as tmp:
        if args.mqtt:
            results = asyncio.run(_run_mqtt(payloads, Path(tmp)))
        else:
            results = run_direct(payloads, Path(tmp), args.postgres)
    command = " ".join([".venv/bin/python bench/fuzz_wire.py", *(argv if argv is not None else sys.argv[1:])])
    report(results, payloads, command, args.mqtt, args.postgres is not None)
    ok = not results.crashed and results.still_acking is not False
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
