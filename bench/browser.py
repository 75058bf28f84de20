"""Memory browser paging at scale: the real MemoryTableModel on a vault of N memories.

    python -m bench.browser --n 100000 --out bench/results/browser.json --dir /tmp/browser100k

The vault is keyword-only (paging needs no vectors) and is built through `Memory.import_`
in chunks (one transaction each), so 100k memories take about a minute instead of the
minutes one-at-a-time adds would; --dir keeps it for the next run. The memories are
bench.scale's synthetic notes with varied types, statuses, tags, pinned and times.

Everything is measured through the model and a TaskRunner under an offscreen
QApplication, so the figures include the thread hop back to the GUI thread:
- first_page_ms: a fresh model's first page until a shown QTableView has painted rows
  (cold: the reader connection's first query after opening the vault)
- deep_page_ms: one fetchMore at row 50,000 (reached by real fetchMore calls, as a
  person scrolling would; keyset paging), median of 5 consecutive pages there
- count_ms: Memory.count(no filters) through the runner, median of 5
- filter_ms: a filter change until its first page is in, the slowest of several filters
`query_only` has the same reads called directly on a warm connection (the engine's share).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from PySide6.QtCore import QEvent, QEventLoop, QObject, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QTableView  # noqa: E402

from bench.common import percentile, write_report  # noqa: E402
from bench.scale import synthetic  # noqa: E402
from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.cube import Filters, MemoryItem, MemoryType, Source, SourceRef, Status, iso  # noqa: E402
from memdesk.engine.vault.exchange import FORMAT, SCHEMA_VERSION  # noqa: E402
from memdesk.engine.vault.keys import KdfParams  # noqa: E402
from memdesk.ui.memory_table import MemoryTableModel  # noqa: E402
from memdesk.ui.tasks import TaskRunner  # noqa: E402

DEEP_ROW = 50_000
CHUNK = 20_000
TYPES = [MemoryType.LONG_TERM] * 6 + [MemoryType.USER, MemoryType.PREFERENCE, MemoryType.RAW_CHAT, MemoryType.RAW_FILE]


def open_vault(folder: Path) -> Memory:
    return Memory.open(folder, passphrase=lambda confirm: "browser-bench", embedder=False,
                       kdf=KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1))


def fake_item(rng: random.Random, i: int) -> MemoryItem:
    text, when = synthetic(rng, i)
    created = when + timedelta(hours=rng.randrange(1, 72))
    roll = rng.random()
    status = Status.DELETED if roll < 0.02 else Status.ARCHIVED if roll < 0.07 else Status.ACTIVATED
    memory_type = rng.choice(TYPES)
    source = {MemoryType.RAW_CHAT: Source.CONVERSATION,
              MemoryType.RAW_FILE: Source.FILE}.get(memory_type, Source.CAPTURE)
    ref = (SourceRef(type="file", doc_path=f"/notes/n{i % 300}.md", start_line=1 + i % 40, end_line=5 + i % 40)
           if source == Source.FILE else SourceRef(type="chat" if source == Source.CONVERSATION else "capture",
                                                    session_id=f"s{i // 20}", chat_time=iso(created)))
    return MemoryItem(memory=text, tags=[f"t{i % 50}"] + (["travel"] if "trip" in text else []),
                      memory_type=memory_type.value, status=status.value, source=source.value, sources=[ref],
                      created_at=created, updated_at=created + timedelta(minutes=rng.randrange(0, 60 * 24 * 30)),
                      event_time=when, priority=rng.choice((0, 0, 0, 1, 2, 5)), pinned=rng.random() < 0.01,
                      usage_count=rng.randrange(0, 30))


def build(mem: Memory, begin: int, n: int) -> float:
    """Import synthetic memories number `begin` .. n-1 in chunks; returns seconds."""
    rng = random.Random(11 + begin)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memdesk-browser-") as tmp:
        path = Path(tmp) / "chunk.jsonl"
        for first in range(begin, n, CHUNK):
            with path.open("w", encoding="utf-8") as out:
                out.write(json.dumps({"format": FORMAT, "schema_version": SCHEMA_VERSION}) + "\n")
                for i in range(first, min(n, first + CHUNK)):
                    out.write(json.dumps({"type": "memory", "item": fake_item(rng, i).to_dict(), "history": []}) + "\n")
            mem.import_(path)
            print(f"built {min(n, first + CHUNK):,} / {n:,}", flush=True)
    return time.perf_counter() - start


class Waiter(QObject):
    """Run the event loop until a condition holds (checked whenever the model says something)."""

    def __init__(self, app: QApplication):
        super().__init__()
        self.app = app

    def until(self, condition, signals, timeout_s: float = 120.0) -> float:
        """Milliseconds until `condition()` is true; the clock starts when called."""
        t0 = time.perf_counter()
        if condition():
            return 0.0
        loop = QEventLoop()
        done: list[float] = []

        def check(*_args) -> None:
            if not done and condition():
                done.append(time.perf_counter())
                loop.quit()
        for signal in signals:
            signal.connect(check)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()
        for signal in signals:
            signal.disconnect(check)
        if not done:
            raise TimeoutError("the model did not finish in time")
        return (done[0] - t0) * 1000


class PaintProbe(QObject):
    """Timestamp of the first paint of a view's viewport that had rows to draw."""

    def __init__(self, view: QTableView):
        super().__init__()
        self.view = view
        self.painted_at: float | None = None
        view.viewport().installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Paint and self.painted_at is None and self.view.model().rowCount() > 0:
            self.painted_at = time.perf_counter()
        return False


FILTERS = {"tag": Filters(tags=("t7",)), "pinned": Filters(pinned=True),
           "type": Filters(memory_types=(MemoryType.USER.value,)),
           "archived": Filters(statuses=(Status.ARCHIVED.value,)),
           "tag_and_type": Filters(tags=("travel",), memory_types=(MemoryType.LONG_TERM.value,))}
ORDERS = ("priority", "event_time", "usage", "created")


def readers_open(mem: Memory) -> int | None:
    """Reader connections the vault has opened so far (one per reading thread is the design)."""
    readers = getattr(mem.db, "_readers", None)
    return None if readers is None else len(readers)


def measure_model(mem: Memory, app: QApplication, runner: TaskRunner) -> dict:
    waiter = Waiter(app)
    model = MemoryTableModel(mem, runner)
    view = QTableView()
    view.resize(1000, 700)
    view.setModel(model)
    view.show()
    probe = PaintProbe(view)
    t0 = time.perf_counter()
    model.reload(keep_rows=False)
    waiter.until(lambda: model.rowCount() > 0 and model.total is not None, [model.loaded, model.totalChanged])
    loop = QEventLoop()
    while probe.painted_at is None and time.perf_counter() - t0 < 30:
        loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 10)
    first_page_ms = ((probe.painted_at or time.perf_counter()) - t0) * 1000
    total = model.total or 0
    view.viewport().removeEventFilter(probe)
    view.hide()  # from here the benchmark drives fetchMore itself, as a scrolling view would

    def settled_ms(start_change) -> float:
        start = time.perf_counter()
        start_change()
        waiter.until(lambda: not model.loading, [model.loadingChanged])
        return (time.perf_counter() - start) * 1000

    warm_first = statistics.median(settled_ms(lambda: model.reload(keep_rows=False)) for _ in range(5))

    def one_count() -> float:
        got: list[float] = []
        start = time.perf_counter()
        runner.read(lambda: mem.count(Filters()), lambda _n: got.append(time.perf_counter()))
        waiter.until(lambda: bool(got), [runner.idle])
        return (got[0] - start) * 1000
    count_ms = statistics.median(one_count() for _ in range(5))

    deep_row = min(DEEP_ROW, max(0, total - 6 * model.page_size))
    page_ms: list[float] = []
    scroll_start = time.perf_counter()
    while model.rowCount() < deep_row and model.canFetchMore():
        page_ms.append(settled_ms(model.fetchMore))
    scroll_s = time.perf_counter() - scroll_start
    deep: list[float] = []
    for _ in range(5):
        offset = model.rowCount()
        deep.append(settled_ms(model.fetchMore))
        assert model.rowCount() > offset, "the deep page brought no rows"
    filter_ms = {name: round(settled_ms(lambda f=f: model.set_filters(f)), 2) for name, f in FILTERS.items()}
    settled_ms(lambda: model.set_filters(Filters()))
    sort_ms = {order: round(settled_ms(lambda o=order: model.set_order(o)), 2) for order in ORDERS}
    view.close()
    view.setModel(None)
    return {
        "memories_listed": total,
        "first_page_ms": round(first_page_ms, 2), "first_page_warm_ms": round(warm_first, 2),
        "deep_page_ms": round(statistics.median(deep), 2), "deep_page_ms_max": round(max(deep), 2),
        "deep_row": deep_row, "page_ms_p50_on_the_way": round(percentile(page_ms, 50), 2) if page_ms else None,
        "scroll_to_deep_row_s": round(scroll_s, 1), "pages_fetched": len(page_ms) + len(deep),
        "count_ms": round(count_ms, 2),
        "filter_ms": max(filter_ms.values()), "filter_ms_by_filter": filter_ms,
        "sort_ms_by_order": sort_ms, "page_size": model.page_size,
    }


def measure_queries(mem: Memory, deep_row: int, page: int) -> dict:
    """The same reads called directly on one thread whose connection stays open and warm:
    what the engine costs without the runner's thread hop or a fresh connection."""
    def best(fn) -> float:
        fn()  # warm this connection's page cache
        return round(min(_timed(fn) for _ in range(3)), 2)
    at_deep_row = mem.list(limit=1, offset=deep_row - 1)[0].id  # the row a scroll to deep_row has shown last
    return {
        "first_page_ms": best(lambda: mem.list(limit=page)),
        "deep_page_ms": best(lambda: mem.list(limit=page, after=at_deep_row)),
        "deep_page_offset_ms": best(lambda: mem.list(limit=page, offset=deep_row)),
        "count_ms": best(lambda: mem.count(Filters())),
        "filter_ms": max(best(lambda f=f: mem.list(f, limit=page)) for f in FILTERS.values()),
        "sort_ms": max(best(lambda o=o: mem.list(order=o, limit=page)) for o in ORDERS),
    }


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def measure(mem: Memory, n: int) -> dict:
    app = QApplication.instance() or QApplication([])
    runner = TaskRunner()
    readers_before = readers_open(mem)
    try:
        report = {"n": n, **measure_model(mem, app, runner)}
    finally:
        runner.shutdown()
    after = readers_open(mem)
    report["reader_connections_opened"] = None if after is None else after - (readers_before or 0)
    report["query_only"] = measure_queries(mem, report["deep_row"], report["page_size"])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dir", type=Path, help="keep (and reuse) the vault here instead of a temporary folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="memdesk-browser-vault-") as tmp:
        folder = args.dir or Path(tmp)
        mem = open_vault(folder)
        try:
            have = mem.count(Filters(statuses=()))
            build_s = None
            if have < args.n:
                build_s = round(build(mem, have, args.n), 1)
            report = measure(mem, mem.count(Filters(statuses=())))
            report["build_s"] = build_s
        finally:
            mem.close()
    write_report(report, args.out, "bench.browser", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
