"""What one delivery's log line costs the event loop, before and after the fast path.

    python bench/log_line.py              # 2,000 lines per measurement, 25 alternating rounds
    python bench/log_line.py --quick      # 1,000, 5 rounds

Logs delivery lines the way ``web/webhook.py`` does, on a running event loop (uvloop when
installed, as uvicorn picks it), ``--per-turn`` lines per loop turn (1: one connection; more:
a committed batch waking many requests at once). The baseline is the code as it was, kept in
``tests/helpers/old_logformat.py`` (the tests hold the new formatters equal to it):
``Logger.log`` with ``extra``, ``formatTime`` per record and ``logging.StreamHandler``.
Each lever is then added on top, in the same run and alternately:

- ``formatter``: the formatters' per-second timestamp, level cache and one-pass cleaning;
- ``record``: ``_log_line`` making the record itself instead of ``Logger.log``.

(A third lever, a handler writing a loop turn's lines in one ``write``, saved 1–2 µs a line at
16–64 lines a turn and cost ~1 µs at one; it was left out: it made every CLI start import
asyncio, and a line could be lost with the process.)

Two streams, both line-buffered text as ``sys.stderr`` is: ``/dev/null`` (the Python side
alone) and a pipe read by ``cat`` (the write syscalls stderr really pays). Prints CPU µs per line:
the best round, less the best round of the loop turning with nothing logged (the best, since
on a shared machine every disturbance only adds).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # the old code, kept in tests/helpers

from tests.helpers.old_logformat import OldJsonFormatter, OldTextFormatter, old_log_line  # noqa: E402

from clerk_sync.logformat import JsonFormatter, TextFormatter  # noqa: E402
from clerk_sync.web import webhook  # noqa: E402

LogLine = Callable[[str, str | None, str | None, str, float, str | None], None]


# --- the measurement ---------------------------------------------------------------------------

FORMATTERS: dict[str, tuple[type[logging.Formatter], type[logging.Formatter]]] = {
    "text": (OldTextFormatter, TextFormatter),
    "json": (OldJsonFormatter, JsonFormatter),
}
VARIANTS = ["baseline", "formatter", "record", "formatter+record"]


def build(variant: str, log_format: str, stream: TextIO) -> tuple[LogLine, logging.Handler]:
    """``_log_line`` and the handler (with its formatter) a variant measures."""
    old_formatter, new_formatter = FORMATTERS[log_format]
    handler = logging.StreamHandler(stream)
    fast_formatter = variant in ("formatter", "formatter+record")
    handler.setFormatter(new_formatter() if fast_formatter else old_formatter())
    fast_record = variant in ("record", "formatter+record")
    return (webhook._log_line if fast_record else old_log_line), handler


async def timed(log_line: LogLine | None, lines: int, per_turn: int) -> float:
    """CPU seconds of this process (user and system: what the server pays, not the time others
    take the core) for ``lines`` lines, ``per_turn`` per loop turn (None: the turns alone)."""
    turns = lines // per_turn
    gc.disable()  # as timeit does: a collection lands on whichever variant is running
    started = time.perf_counter()
    cpu = time.process_time()
    for _ in range(turns):
        if log_line is not None:
            for _ in range(per_turn):
                log_line(
                    "msg_2pXk4cN0bQm5T8zYwVt1Lr6sHj",
                    "user.created",
                    "user_2pXk4dFg7HjK9LmN0pQr3StUv",
                    "processed",
                    started,
                    None,
                )
        await asyncio.sleep(0)
    await asyncio.sleep(0)  # the last turn's write, for the turn-buffered handler
    cpu = time.process_time() - cpu
    gc.enable()
    return cpu


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def check_same_output() -> None:
    """What is timed must be what was written: the same record through old and new."""
    collect = Collect()
    webhook.log.handlers[:] = [collect]
    webhook.log.propagate = False
    webhook._log_line("msg_a@b.io", "user.created", "user_\x1b[2K", "failed", 0.0, "no sk_live_x")
    [record] = collect.records
    assert OldJsonFormatter().format(record) == JsonFormatter().format(record)
    for colour in (False, True):
        assert OldTextFormatter(colour=colour).format(record) == TextFormatter(
            colour=colour
        ).format(record)


def pipe_stream() -> tuple[TextIO, subprocess.Popen[bytes]]:
    reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert reader.stdin is not None
    return io.TextIOWrapper(reader.stdin, encoding="utf-8", line_buffering=True), reader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--per-turn", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    lines, rounds = (1_000, 5) if args.quick else (2_000, 25)
    if args.loop == "uvloop":
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            args.loop = "asyncio"

    check_same_output()
    log = webhook.log
    log.propagate = False
    log.setLevel(logging.INFO)
    devnull = open("/dev/null", "w", encoding="utf-8", buffering=1)  # noqa: SIM115
    pipe, reader = pipe_stream()
    streams = {"/dev/null": devnull, "pipe": pipe}
    columns = [(name, k) for name in streams for k in args.per_turn]
    results: dict[tuple[str, str, str, int], list[float]] = {}
    loop_alone: dict[tuple[str, int], list[float]] = {}

    async def measure() -> None:
        for _ in range(rounds):  # every cell, round by round, so all meet the same machine
            for stream_name, per_turn in columns:
                loop_alone.setdefault((stream_name, per_turn), []).append(
                    await timed(None, lines, per_turn)
                )
                for log_format in FORMATTERS:
                    for variant in VARIANTS:
                        log_line, handler = build(variant, log_format, streams[stream_name])
                        log.handlers[:] = [handler]
                        await timed(log_line, lines // 10, per_turn)  # warm up
                        seconds = await timed(log_line, lines, per_turn)
                        handler.flush()
                        key = (log_format, variant, stream_name, per_turn)
                        results.setdefault(key, []).append(seconds)

    asyncio.run(measure())
    log.handlers.clear()
    pipe.close()
    reader.wait()
    devnull.close()

    print(f"CPU µs per delivery line, best of {rounds} rounds of {lines:,} ({args.loop} loop)")
    header = "".join(f"{f'{name} ×{k}/turn':>20}" for name, k in columns)
    for log_format in FORMATTERS:
        print(f"\n{log_format:<20}{header}")
        for variant in VARIANTS:
            best = [
                min(results[log_format, variant, name, k]) - min(loop_alone[name, k])
                for name, k in columns
            ]
            cells = "".join(f"{seconds / lines * 1e6:>20.2f}" for seconds in best)
            print(f"  {variant:<18}{cells}")


if __name__ == "__main__":
    main()
