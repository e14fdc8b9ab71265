"""Write pdspec traces (docs/trace-format.md, versions 1 to 4) from a Python serving engine. Standard library only.

    from pdspec_trace import TraceWriter

    with TraceWriter("trace.jsonl", mode="unified", blocks=1024, block_size=16, sms=132, version=2,
                     source="vllm@v0.11") as trace:
        trace.event("arrive", req="r1", prompt=37, max_tokens=64)
        trace.event("schedule", req="r1", worker="U0")
        trace.event("alloc", worker="U0", req="r1", blocks=[0, 1, 2])
        ...

    pdspec conform trace.jsonl --quiescent

The first line is the header; each event is one JSON line with its `t` (seconds since the writer started,
from a monotonic clock, unless given) and its fields. Field names are written as the format spells them:
a Python name in snake_case becomes camelCase (`max_tokens` -> `maxTokens`) and a trailing underscore is
dropped (`from_` -> `from`). An event the header's version does not have, an unknown or missing field, or a
time that goes backwards is refused at the call (ValueError), so a hook in the wrong place fails where it is,
not later in `pdspec conform`.

Events are buffered and written in batches: when `buffer_events` are pending, when `flush_seconds` have
passed since the last write, on flush(), and on close() (also at interpreter exit). Pass `buffer_events=1`
to write each event at once, for a live `pdspec conform -` reading the engine's pipe. The writer is safe to
call from several threads: events are numbered in the order their calls take its lock.
"""

import atexit
import json
import math
import sys
import threading
import time

FORMAT = "pdspec-trace"
VERSIONS = (1, 2, 3, 4)
MODES = ("semi-pd", "nexus", "disaggregated", "unified")

# Each event: (the first format version that has it, required fields, optional fields with their version).
EVENTS = {
    "arrive": (1, ("req", "prompt"), {"maxTokens": 1, "keys": 2}),
    "schedule": (1, ("req", "worker"), {}),
    "alloc": (1, ("worker", "req", "blocks"), {"group": 3}),
    "alloc_query": (1, ("worker",), {}),
    "alloc_take": (1, ("worker", "req", "blocks"), {}),
    "alloc_commit": (1, ("worker",), {}),
    "cache_hit": (2, ("req", "blocks", "tokens"), {}),
    "cache_insert": (2, ("req", "block", "key"), {}),
    "evict": (2, ("block",), {"key": 1}),
    "fork": (2, ("parent", "child"), {}),
    "cow": (2, ("worker", "req", "shared", "copy"), {}),
    "cache_size": (2, ("evictable", "protected"), {}),
    "step_begin": (1, ("worker", "step", "batch"), {}),
    "step_end": (1, ("worker", "step"), {"accepted": 3}),
    "token": (1, ("req", "index"), {"token": 1}),
    "handoff": (1, ("req", "from", "to"), {}),
    "join": (1, ("req", "worker"), {}),
    "transfer_begin": (1, ("xfer", "req", "from", "to"), {}),
    "transfer_end": (1, ("xfer",), {"outcome": 1}),
    "preempt": (1, ("req", "worker"), {}),
    "free": (1, ("req", "blocks"), {"group": 3}),
    "slot_alloc": (3, ("worker", "req", "slot"), {}),
    "slot_free": (3, ("req", "slot"), {}),
    "finish": (1, ("req",), {}),
    "abort": (1, ("req",), {}),
    "resize_begin": (1, ("epoch", "prefill", "decode"), {}),
    "worker_start": (1, ("worker", "role", "epoch", "share"), {"gpu": 1}),
    "worker_ready": (1, ("worker",), {}),
    "migrate": (1, ("req", "from", "to"), {}),
    "worker_stop": (1, ("worker",), {}),
    "resize_end": (1, ("epoch",), {}),
    "task_create": (4, ("task", "req", "worker", "step", "from", "to", "blocks"), {}),
    "task_dispatch": (4, ("task", "server", "buffer"), {"reads": 1}),
    "task_start": (4, ("task",), {}),
    "task_end": (4, ("task",), {}),
    "task_consume": (4, ("task",), {}),
    "server_lost": (4, ("server",), {}),
    "tick": (3, (), {}),
    "idle": (3, (), {}),
}

# Header fields beyond the required ones, with the version that has them.
HEADER_OPTIONAL = {
    "split": 1, "shareRule": 1, "allocator": 1, "gpus": 1, "workers": 1, "prefixCache": 2, "groups": 3,
    "stateSlots": 3, "releaseWithin": 3, "attentionServers": 4, "note": 1, "source": 1,
}


def format_name(name):
    """A Python keyword argument as the format's field name: max_tokens -> maxTokens, from_ -> from."""
    name = name.rstrip("_")
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class TraceWriter:
    def __init__(self, out, *, mode, blocks, block_size, sms, version=1, buffer_events=256, flush_seconds=1.0,
                 clock=None, **header):
        if version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        for name, value in (("blocks", blocks), ("block_size", block_size), ("sms", sms)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(buffer_events, int) or buffer_events < 1:
            raise ValueError(f"buffer_events must be a positive integer, got {buffer_events!r}")
        self.version = version
        self._head = {"format": FORMAT, "version": version, "mode": mode, "blocks": blocks, "blockSize": block_size, "sms": sms}
        for key, value in header.items():
            name = format_name(key)
            since = HEADER_OPTIONAL.get(name)
            if since is None:
                raise ValueError(f"unknown header field {key!r} (known: {', '.join(HEADER_OPTIONAL)})")
            if since > version:
                raise ValueError(f"header field {name!r} needs trace version {since}, the writer has {version}")
            if value is not None:
                self._head[name] = value
        self._buffer_events = buffer_events
        self._flush_seconds = flush_seconds
        self._clock = clock or time.monotonic
        self._start = self._clock()
        self._last_t = 0.0
        self._last_flush = self._start
        self._pending = []
        self._lock = threading.Lock()
        self._closed = False
        if out == "-":
            self._file, self._owned = sys.stdout, False
        elif isinstance(out, str):
            self._file, self._owned = open(out, "w", encoding="utf-8", newline="\n"), True
        else:
            self._file, self._owned = out, False
        self._binary = "b" in getattr(self._file, "mode", "")
        self.events = 0
        self._write([self._line(self._head)])
        atexit.register(self.close)

    # --- writing ---

    @staticmethod
    def _line(value):
        # allow_nan=False: NaN and Infinity are not JSON, and not times or ids of the format.
        return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False) + "\n"

    def _write(self, lines):
        text = "".join(lines)
        self._file.write(text.encode("utf-8") if self._binary else text)
        self._file.flush()

    def event(self, ev, t=None, **fields):
        """Writes one event; `t` defaults to the seconds since the writer started."""
        spec = EVENTS.get(ev)
        if spec is None:
            raise ValueError(f"unknown event {ev!r}")
        since, required, optional = spec
        if since > self.version:
            raise ValueError(f"event {ev!r} needs trace version {since}, the writer has {self.version}")
        record = {}
        for key, value in fields.items():
            name = format_name(key)
            if name != "note" and name not in required:
                if name not in optional:
                    known = ", ".join(list(required) + list(optional) + ["note"])
                    raise ValueError(f"event {ev!r} has no field {name!r} (its fields: {known})")
                if optional[name] > self.version:
                    raise ValueError(f"field {name!r} of {ev!r} needs trace version {optional[name]}, the writer has {self.version}")
            if value is not None:
                record[name] = value
        missing = [name for name in required if name not in record]
        if missing:
            raise ValueError(f"event {ev!r} needs {', '.join(missing)}")
        with self._lock:
            if self._closed:
                raise ValueError("the trace is closed")
            now = self._clock() if t is None else None
            when = round(now - self._start, 9) if t is None else t
            if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when) or when < 0:
                raise ValueError(f"t must be a finite number of seconds >= 0, got {when!r}")
            if when < self._last_t:
                raise ValueError(f"t {when} is before the previous event's {self._last_t}: times never go back")
            self._last_t = when
            line = self._line({"t": when, "ev": ev, **record})
            self._pending.append(line)
            self.events += 1
            clock = now if now is not None else self._clock()
            if len(self._pending) >= self._buffer_events or clock - self._last_flush >= self._flush_seconds:
                self._flush_locked(clock)

    def _flush_locked(self, clock=None):
        if self._pending:
            lines, self._pending = self._pending, []
            self._write(lines)
        self._last_flush = self._clock() if clock is None else clock

    def flush(self):
        """Writes every pending event now."""
        with self._lock:
            if not self._closed:
                self._flush_locked()

    def close(self):
        """Writes what is pending and closes the file (a file the writer opened itself)."""
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            self._closed = True
            if self._owned:
                self._file.close()
        atexit.unregister(self.close)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
