"""Times and measures the peak memory of our initializers next to Keras's own.

Cases (``--cases``):

- ``dense``: one 4096×4096 float32 Dense kernel.
- ``conv``: one 3×3×512×512 float32 Conv2D kernel.
- ``model``: building a Sequential model of about 100 million parameters
  (input 4096, six ``Dense(4096)``) whose layers name their initializer by
  string (``"he_normal_custom"``; for Keras's untruncated normal, which has no
  string name, the equivalent config dict).
- ``huge``: one 2^28-element float32 kernel (1 GiB), memory only, reported as
  peak / tensor size. Drawing it must not make a float64 or full-size copy.
- ``model_init``: ``keras_weightinit.initialize`` on a 20-layer ReLU MLP
  against assigning Keras's ``he_uniform`` by hand, and LSUV as a multiple
  of one forward pass over the same batch.

Rows: each of our six initializers against Keras's closest built-in
(``VarianceScaling(..., distribution="untruncated_normal")`` for the normal
ones, rows "keras untruncated glorot_normal" etc.; ``GlorotUniform``,
``LecunUniform`` and ``HeUniform`` for the uniform ones),
our variance-corrected truncated normal against Keras's ``HeNormal`` (which
is truncated), and NumPy's generator (``default_rng().standard_normal`` and
``.random`` in float32) as a reference point.

Time. All rows of a case run in one fresh process, interleaved
(A B C A B C ...; the order rotates each round so no row always runs first)
after warm-up rounds. A row's time is the median over the rounds; its ratio
is the median over rounds of the paired ratio to its baseline's time in the
same round, so that load from other users of a shared machine, which drifts
slowly, cancels out. Ratios matter, absolute times do not.

Peak memory. `tracemalloc` sees only Python's allocator, not the buffers
TensorFlow, XLA or PyTorch allocate, so it would report nothing. Instead
each (case, row) is measured in its own fresh process, which:

1. imports Keras and the package and warms the row up on a tiny shape;
2. resets the kernel's high-water mark of its resident set (writing ``5``
   to ``/proc/self/clear_refs``, Linux ≥ 4.0) and reads ``VmRSS`` from
   ``/proc/self/status`` as the baseline;
3. draws the tensor (or builds the model), waits for it (JAX dispatches
   asynchronously), keeps it alive, and reads ``VmHWM``.

``VmHWM - baseline`` is everything the draw made resident, temporaries
included, as the operating system counts it; the result itself is 1× the
tensor's size, so a ratio of 3 means two full-size temporaries. One process
per measurement is necessary: TensorFlow's and PyTorch's allocators keep
freed blocks, so a second draw in the same process would reuse them and look
free. Memory is deterministic enough that one measurement per row suffices
(``--memory-repeats`` for more; the median is reported).

Run ``python benchmarks/bench_initializers.py --help``. ``--quick`` uses
tiny sizes and few rounds: it checks that the script works, not speed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULT_TAG = "BENCH_RESULT "

FULL_SIZES = {
    "dense": (4096, 4096),
    "conv": (3, 3, 512, 512),
    "model": (4096, 6),  # input width = units, number of Dense layers
    "huge": (16384, 16384),  # 2**28 elements
    "model_init": (512, 20, 512),  # width, depth, batch
}
QUICK_SIZES = {
    "dense": (128, 128),
    "conv": (3, 3, 16, 16),
    "model": (128, 6),
    "huge": (2048, 2048),
    "model_init": (32, 4, 64),
}
CASES = ("dense", "conv", "model", "huge", "model_init")

# (row name, kind, spec, baseline row name). kind: "ours" (a registered
# string name), "keras" (a Keras identifier: string or config dict), "numpy".
_VS = "VarianceScaling"


def _untruncated(scale: float, mode: str) -> dict:
    config = {"scale": scale, "mode": mode, "distribution": "untruncated_normal"}
    return {"class_name": _VS, "config": config}


ROWS = [
    ("glorot_normal_custom", "ours", "glorot_normal_custom", "keras untruncated glorot_normal"),
    ("keras untruncated glorot_normal", "keras", _untruncated(1.0, "fan_avg"), None),
    ("glorot_uniform_custom", "ours", "glorot_uniform_custom", "keras glorot_uniform"),
    ("keras glorot_uniform", "keras", "glorot_uniform", None),
    ("lecun_normal_custom", "ours", "lecun_normal_custom", "keras untruncated lecun_normal"),
    ("keras untruncated lecun_normal", "keras", _untruncated(1.0, "fan_in"), None),
    ("lecun_uniform_custom", "ours", "lecun_uniform_custom", "keras lecun_uniform"),
    ("keras lecun_uniform", "keras", "lecun_uniform", None),
    ("he_normal_custom", "ours", "he_normal_custom", "keras untruncated he_normal"),
    ("keras untruncated he_normal", "keras", _untruncated(2.0, "fan_in"), None),
    ("he_uniform_custom", "ours", "he_uniform_custom", "keras he_uniform"),
    ("keras he_uniform", "keras", "he_uniform", None),
    (
        "VarianceScalingCustom truncated he",
        "ours",
        {
            "class_name": "keras_weightinit>VarianceScalingCustom",
            "config": {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"},
        },
        "keras he_normal (truncated)",
    ),
    ("keras he_normal (truncated)", "keras", "he_normal", None),
    ("numpy standard_normal", "numpy", "standard_normal", "keras untruncated he_normal"),
    ("numpy random", "numpy", "random", "keras he_uniform"),
]
ROW_NAMES = [r[0] for r in ROWS]


# ---------------------------------------------------------------------------
# Child side: runs inside a fresh interpreter with KERAS_BACKEND set.
# ---------------------------------------------------------------------------


def _mem_status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _sync(x) -> None:
    """Waits until `x` (a tensor, a list of them, or a model) is computed."""
    import keras

    if keras.backend.backend() != "jax":
        return  # TensorFlow eager and PyTorch on CPU are synchronous
    import jax

    if isinstance(x, keras.Model):
        x = [v.value for v in x.weights]
    jax.block_until_ready(x)


def _get_initializer(kind: str, spec):
    import keras

    if kind in ("ours", "keras"):
        return keras.initializers.get(spec)
    raise ValueError(kind)


def _make_draw(row: tuple, case: str, sizes: dict):
    """Returns a no-argument callable performing the row's work for `case`."""
    import keras
    import numpy as np

    name, kind, spec, _ = row
    if case == "model":
        width, depth = sizes["model"]
        if kind == "numpy":
            return None

        def build(width=width, depth=depth):
            layers = [keras.Input((width,))]
            layers += [keras.layers.Dense(width, kernel_initializer=spec) for _ in range(depth)]
            return keras.Sequential(layers)

        return build
    shape = sizes[case]
    if kind == "numpy":
        rng = np.random.default_rng()
        method = getattr(rng, spec)  # standard_normal or random
        return lambda: method(shape, dtype=np.float32)
    init = _get_initializer(kind, spec)
    return lambda: init(shape, dtype="float32")


def _warm_up(row: tuple, case: str, sizes: dict) -> None:
    """Runs the row once on a tiny size: imports, traces, first-call costs."""
    tiny = dict(sizes)
    tiny["model"] = (8, 2)
    for c in ("dense", "conv", "huge"):
        tiny[c] = (4,) * len(sizes[c])
    for _ in range(2):
        draw = _make_draw(row, case, tiny)
        if draw is not None:
            out = draw()
            _sync(out)
            del out


def _nbytes(case: str, sizes: dict) -> int:
    if case == "model":
        width, depth = sizes["model"]
        return 4 * depth * (width * width + width)
    n = 1
    for d in sizes[case]:
        n *= d
    return 4 * n


def child_memory(case: str, row_name: str, sizes: dict) -> dict:
    row = ROWS[ROW_NAMES.index(row_name)]
    _warm_up(row, case, sizes)
    draw = _make_draw(row, case, sizes)
    if draw is None:
        return {"skipped": True}
    gc.collect()
    if not _reset_peak():
        return {"skipped": True, "why": "cannot reset VmHWM (/proc/self/clear_refs)"}
    base = _mem_status()["VmRSS"]
    start = time.perf_counter()
    out = draw()
    _sync(out)
    elapsed = time.perf_counter() - start
    peak = _mem_status()["VmHWM"] - base
    del out
    return {"peak_bytes": peak, "tensor_bytes": _nbytes(case, sizes), "single_time": elapsed}


def child_time(case: str, row_names: list[str], sizes: dict, runs: int, warmup: int) -> dict:
    import keras

    rows = [ROWS[ROW_NAMES.index(n)] for n in row_names]
    draws = {}
    for row in rows:
        _warm_up(row, case, sizes)
        draw = _make_draw(row, case, sizes)
        if draw is not None:
            draws[row[0]] = draw
    names = list(draws)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter()
            out = draws[name]()
            _sync(out)
            elapsed = time.perf_counter() - start
            del out
            if case == "model":
                keras.backend.clear_session()
            if r >= warmup:
                times[name].append(elapsed)
        gc.collect()  # between rounds, outside every timed region
    return {"times": times}


def _model_init_case(sizes: dict, runs: int, warmup: int) -> dict:
    """Times `keras_weightinit.initialize`, analytic and LSUV.

    Baselines: for the analytic mode, re-drawing every kernel with Keras's
    `he_uniform` and assigning it (what a user does by hand); for LSUV, one
    forward pass of the same model over the same batch.
    """
    import importlib.util

    import keras
    import numpy as np

    if importlib.util.find_spec("keras_weightinit.model_init") is None:
        return {"skipped": True, "why": "keras_weightinit.model_init does not exist yet"}
    from keras_weightinit.model_init import initialize

    width, depth, batch = sizes["model_init"]
    layers = [keras.Input((width,))]
    layers += [keras.layers.Dense(width, activation="relu") for _ in range(depth)]
    model = keras.Sequential(layers)
    data = np.random.default_rng(0).standard_normal((batch, width)).astype("float32")
    he_uniform = keras.initializers.get("he_uniform")

    def by_hand():
        for layer in model.layers:
            layer.kernel.assign(he_uniform(layer.kernel.shape))
        return model

    def analytic():
        initialize(model, method="analytic")
        return model

    def lsuv():
        initialize(model, data, method="lsuv")
        return model

    work = {
        "keras he_uniform, assigned by hand": by_hand,
        "initialize(model)": analytic,
        "one forward pass": lambda: model(data, training=False),
        "LSUV": lsuv,
    }
    times: dict[str, list[float]] = {n: [] for n in work}
    names = list(work)
    for r in range(warmup + runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter()
            _sync(work[name]())
            elapsed = time.perf_counter() - start
            if r >= warmup:
                times[name].append(elapsed)
    return {"times": times}


def child_main(argv: list[str]) -> None:
    request = json.loads(argv[0])
    sys.path.insert(0, str(REPO))
    import keras

    import keras_weightinit  # noqa: F401  (registers the string names)

    keras.utils.set_random_seed(0)
    sizes = {k: tuple(v) for k, v in request["sizes"].items()}
    if request["what"] == "memory":
        result = child_memory(request["case"], request["row"], sizes)
    else:  # timing: every case in this one process, one after the other
        result = {"cases": {}}
        for case in request["cases"]:
            if case == "model_init":
                out = _model_init_case(sizes, request["runs"], request["warmup"])
            else:
                rows = _case_rows(case, request["rows"])
                runs = request["model_runs"] if case == "model" else request["runs"]
                out = child_time(case, rows, sizes, runs, request["warmup"])
            result["cases"][case] = out
    result["backend"] = keras.backend.backend()
    print(RESULT_TAG + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------
# Parent side: spawns the children, prints the tables. Imports no backend.
# ---------------------------------------------------------------------------


def _run_child(request: dict, backend: str, timeout: float) -> dict:
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, __file__, "--_child", json.dumps(request)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    raise RuntimeError(
        f"benchmark child failed ({proc.returncode}) for {request}:\n{proc.stderr[-3000:]}"
    )


def _paired(times: list[float], base: list[float]) -> tuple[float, str]:
    """Median of the per-round ratios, and their interquartile range."""
    ratios = sorted(a / b for a, b in zip(times, base))
    if len(ratios) < 4:
        return statistics.median(ratios), ""
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), f" ({q1:.2f}–{q3:.2f})"


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1e3:.1f}" if seconds < 10 else f"{seconds * 1e3:.0f}"


def _fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _case_rows(case: str, rows: list[str]) -> list[str]:
    """The rows that apply to `case`: NumPy cannot build a Keras model."""
    return [r for r in rows if not (case == "model" and ROWS[ROW_NAMES.index(r)][1] == "numpy")]


def _selected_rows(names: list[str] | None) -> list[str]:
    if not names:
        return list(ROW_NAMES)
    chosen = []
    for name in names:
        if name not in ROW_NAMES:
            raise SystemExit(f"Unknown row {name!r}. Known rows: {', '.join(ROW_NAMES)}")
        base = ROWS[ROW_NAMES.index(name)][3]
        for n in (name, base):
            if n is not None and n not in chosen:
                chosen.append(n)
    return [n for n in ROW_NAMES if n in chosen]


def _case_table(case: str, rows: list[str], timing: dict | None, memory: dict) -> list[str]:
    header = (
        "| initializer | vs | time (ms) | time ratio (IQR) | peak memory (MiB) "
        "| peak / size | memory ratio |"
    )
    lines = [header, "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    times = (timing or {}).get("times", {})
    for name in rows:
        base = ROWS[ROW_NAMES.index(name)][3]
        t = times.get(name)
        t_med = statistics.median(t) if t else None
        ratio = spread = None
        if t and base in times and times[base]:
            ratio, spread = _paired(t, times[base])
        m = memory.get(name, {})
        peak = m.get("peak_bytes")
        per_size = peak / m["tensor_bytes"] if peak is not None else None
        m_ratio = None
        base_peak = memory.get(base, {}).get("peak_bytes") if base else None
        if peak is not None and base_peak:
            m_ratio = peak / base_peak
        if case == "huge":
            t_med = m.get("single_time")
        if t_med is None and peak is None:
            continue
        lines.append(
            f"| {name} | {base or '(baseline)'} | {_fmt_time(t_med)} | {_fmt(ratio)}{spread or ''} "
            f"| {_fmt(None if peak is None else peak / 2**20, 1)} | {_fmt(per_size)} "
            f"| {_fmt(m_ratio)} |"
        )
    return lines


def _describe(case: str, sizes: dict) -> str:
    if case == "model":
        width, depth = sizes["model"]
        params = depth * (width * width + width)
        return f"model build: input {width}, {depth} × Dense({width}), {params:,} parameters"
    if case == "model_init":
        width, depth, batch = sizes["model_init"]
        return f"model-level initialization: {depth} × Dense({width}, relu), batch {batch}"
    shape = "×".join(map(str, sizes[case]))
    label = {"dense": "Dense kernel", "conv": "Conv2D kernel", "huge": "large kernel"}[case]
    return f"{label} {shape} float32 ({_nbytes(case, sizes) / 2**20:.0f} MiB)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(
            "Time and peak memory of keras_weightinit's initializers next to "
            "Keras's built-ins and NumPy, as ratios (see the module docstring "
            "for the method)."
        )
    )
    parser.add_argument(
        "--backend",
        default="tensorflow",
        choices=["tensorflow", "jax", "torch"],
        help="Keras backend for the measurements (default: tensorflow).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Tiny sizes and 2 rounds: checks that the script works, not speed.",
    )
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"Comma-separated subset of {','.join(CASES)} (default: all).",
    )
    parser.add_argument(
        "--rows",
        default="",
        help=(
            "Comma-separated subset of rows (each brings its baseline along); "
            "default: all. Rows: " + "; ".join(ROW_NAMES)
        ),
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="Timed rounds (default 11; quick 2)."
    )
    parser.add_argument(
        "--model-runs",
        type=int,
        default=None,
        help="Timed rounds of the ~100M-parameter model build (default: min(--runs, 5)).",
    )
    parser.add_argument(
        "--huge-log2",
        type=int,
        default=None,
        help="Elements of the large kernel as a power of two (default 28, i.e. 1 GiB).",
    )
    parser.add_argument("--warmup", type=int, default=None, help="Warm-up rounds (default 2).")
    parser.add_argument("--no-memory", action="store_true", help="Skip the peak-memory processes.")
    parser.add_argument(
        "--memory-repeats",
        type=int,
        default=1,
        help="Fresh processes per memory measurement; the median is reported (default 1).",
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write raw results here.")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="Seconds allowed per child process."
    )
    return parser


def _parse_args(argv: list[str]) -> argparse.Namespace:
    """The options, with the defaults that depend on --quick filled in and checked."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.sizes = dict(QUICK_SIZES if args.quick else FULL_SIZES)
    if args.huge_log2 is not None:
        if not 2 <= args.huge_log2 <= 34:
            parser.error("--huge-log2 must be between 2 and 34")
        half = args.huge_log2 // 2
        args.sizes["huge"] = (2**half, 2 ** (args.huge_log2 - half))
    args.runs = args.runs if args.runs is not None else (2 if args.quick else 11)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.model_runs = args.model_runs if args.model_runs is not None else min(args.runs, 5)
    if args.runs < 1 or args.model_runs < 1 or args.warmup < 0:
        parser.error("--runs and --model-runs must be ≥ 1 and --warmup ≥ 0")
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in args.cases:
        if c not in CASES:
            parser.error(f"unknown case {c!r}; choose from {', '.join(CASES)}")
    args.rows = _selected_rows([r.strip() for r in args.rows.split(",") if r.strip()])
    return args


def _time_cases(args: argparse.Namespace, request_base: dict) -> dict:
    """Times every case but the large kernel: one child times them all."""
    timed = [c for c in args.cases if c != "huge"]
    if not timed:
        return {}
    request = {**request_base, "what": "time", "cases": timed, "rows": args.rows}
    return _run_child(request, args.backend, args.timeout)["cases"]


def _print_model_init(result: dict) -> None:
    """The model-level steps, each against the step it is compared with."""
    if result.get("skipped"):
        print(f"skipped: {result['why']}\n")
        return
    times = result["times"]
    forward = times["one forward pass"]
    by_hand = times["keras he_uniform, assigned by hand"]
    print("| step | time (ms) | ratio |")
    print("| --- | ---: | --- |")
    for name, ref, label in (
        ("keras he_uniform, assigned by hand", None, ""),
        ("initialize(model)", by_hand, "× assigning Keras's he_uniform by hand"),
        ("one forward pass", None, ""),
        ("LSUV", forward, "× one forward pass over the same batch"),
    ):
        t = times[name]
        ratio = f"{_paired(t, ref)[0]:.1f} {label}" if ref else ""
        print(f"| {name} | {_fmt_time(statistics.median(t))} | {ratio} |")
    print()


def _measure_memory(
    case: str, rows: list[str], args: argparse.Namespace, request_base: dict
) -> dict:
    """Peak memory of each row: the median over --memory-repeats fresh processes."""
    memory: dict = {}
    for name in rows:
        samples = [
            _run_child(
                {**request_base, "what": "memory", "case": case, "row": name},
                args.backend,
                args.timeout,
            )
            for _ in range(max(1, args.memory_repeats))
        ]
        if samples[0].get("skipped"):
            continue
        memory[name] = {
            "peak_bytes": statistics.median(s["peak_bytes"] for s in samples),
            "tensor_bytes": samples[0]["tensor_bytes"],
            "single_time": statistics.median(s["single_time"] for s in samples),
        }
    return memory


def _print_case(
    case: str, args: argparse.Namespace, request_base: dict, timing: dict | None
) -> dict:
    """Measures one kernel or model case's memory, prints its table; returns its raw results."""
    case_rows = _case_rows(case, args.rows)
    memory = {} if args.no_memory else _measure_memory(case, case_rows, args, request_base)
    print("\n".join(_case_table(case, case_rows, timing, memory)))
    if case == "huge":
        print("\n(time: a single draw in a fresh process, for information only)")
    print(flush=True)
    return {"timing": timing, "memory": memory}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_child"]:
        child_main(argv[1:])
        return 0
    args = _parse_args(argv)
    print(
        f"backend {args.backend}; {args.runs} timed rounds ({args.model_runs} for the model "
        f"build) after {args.warmup} warm-up, interleaved"
    )
    print(f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs\n")
    request_base = {
        "sizes": args.sizes,
        "runs": args.runs,
        "model_runs": args.model_runs,
        "warmup": args.warmup,
    }
    raw: dict = {"backend": args.backend, "runs": args.runs, "warmup": args.warmup, "cases": {}}
    timings = _time_cases(args, request_base)
    for case in args.cases:
        print(f"### {_describe(case, args.sizes)}\n", flush=True)
        if case == "model_init":
            raw["cases"][case] = timings[case]
            _print_model_init(timings[case])
        else:
            raw["cases"][case] = _print_case(case, args, request_base, timings.get(case))
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
