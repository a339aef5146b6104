"""What LSUV costs, in forward passes: `initialize(model, batch)` / `model(batch)`.

For each model, one process times, interleaved round after round (so that
a slower spell of a shared machine hits both alike):

- ``forward``: ``model(batch, training=False)``, the unit;
- ``lsuv``: ``keras_weightinit.initialize(model, batch, seed=0)`` (the
  analytic draw of every kernel, the "before" measurement, the LSUV pass
  and the report);
- ``analytic``: ``keras_weightinit.initialize(model, seed=0)``, the draw
  alone, for reference.

It prints, per model, the median over the rounds of ``lsuv / forward`` and
``analytic / forward``, then the median of the per-model ratios. The first
call of each (tracing, compilation, caches) is timed apart and reported as
its own ratio: it is paid once per process and shape.

Models (default sizes, those of the cost target): 20 x Dense(512) with a
batch of 512; ``keras.applications`` ResNet50, VGG16 and MobileNetV2 at
32x32 (``weights=None``) with a batch of 32. Targets on TensorFlow: median
<= 2.5, each <= 4 (printed as PASS/FAIL; the exit code is 0 either way,
since a loaded machine can miss a timing).

Run: ``python benchmarks/lsuv_cost.py --backend tensorflow`` (or jax, torch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

MODELS = ("mlp", "resnet50", "vgg16", "mobilenetv2")
MEDIAN_TARGET = 2.5
EACH_TARGET = 4.0


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--mlp-depth", type=int, default=20)
    parser.add_argument("--mlp-width", type=int, default=512)
    parser.add_argument("--mlp-batch", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--image-batch", type=int, default=32)
    parser.add_argument("--json", metavar="PATH", help="also write every timing to PATH")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if min(args.mlp_batch, args.image_batch) < 16:
        parser.error("LSUV needs batches of at least 16 examples")
    return args


def build(name: str, args):
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    if name == "mlp":
        width = args.mlp_width
        model = keras.Sequential(
            [keras.Input((width,))]
            + [keras.layers.Dense(width, activation="relu") for _ in range(args.mlp_depth)]
        )
        x = rng.standard_normal((args.mlp_batch, width)).astype("float32")
        return f"{args.mlp_depth} x Dense({width}), batch {args.mlp_batch}", model, x
    s = args.image_size
    make = {
        "resnet50": keras.applications.ResNet50,
        "vgg16": keras.applications.VGG16,
        "mobilenetv2": keras.applications.MobileNetV2,
    }[name]
    model = make(weights=None, input_shape=(s, s, 3))
    x = rng.standard_normal((args.image_batch, s, s, 3)).astype("float32")
    return f"{make.__name__} {s}x{s}, batch {args.image_batch}", model, x


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(name: str, args) -> dict:
    import keras

    import keras_weightinit as kwi

    label, model, x = build(name, args)
    x = keras.ops.convert_to_tensor(x)
    # Backend-ready data for both, so that neither pays a host-to-device copy.

    def forward():
        keras.ops.convert_to_numpy(keras.ops.sum(model(x, training=False)))

    def lsuv():
        kwi.initialize(model, x, seed=0)

    def analytic():
        kwi.initialize(model, seed=0)

    first = {"forward": _seconds(forward), "lsuv": _seconds(lsuv), "analytic": _seconds(analytic)}
    times: dict[str, list[float]] = {"forward": [], "lsuv": [], "analytic": []}
    for _ in range(args.rounds):
        for key, fn in (("forward", forward), ("lsuv", lsuv), ("analytic", analytic)):
            times[key].append(_seconds(fn))
    fwd = statistics.median(times["forward"])
    return {
        "model": name,
        "label": label,
        "params": int(sum(int(keras.ops.size(v)) for v in model.weights)),
        "times": times,
        "first": first,
        "lsuv_ratio": statistics.median(
            lsuv / f for lsuv, f in zip(times["lsuv"], times["forward"])
        ),
        "analytic_ratio": statistics.median(
            a / f for a, f in zip(times["analytic"], times["forward"])
        ),
        "forward_s": fwd,
        "first_forward_ratio": first["forward"] / fwd,
        "first_lsuv_ratio": first["lsuv"] / fwd,
    }


def table(rows: list[dict], backend: str) -> tuple[str, float]:
    lines = [
        "| model | parameters | forward (median) | lsuv / forward | analytic / forward "
        "| first forward / forward | first lsuv / forward |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['params'] / 1e6:.1f}M | {r['forward_s'] * 1e3:.0f} ms "
            f"| {r['lsuv_ratio']:.2f} | {r['analytic_ratio']:.2f} "
            f"| {r['first_forward_ratio']:.2f} | {r['first_lsuv_ratio']:.2f} |"
        )
    median = statistics.median(r["lsuv_ratio"] for r in rows)
    lines += ["", f"Median of lsuv / forward over the models ({backend}): {median:.2f}"]
    return "\n".join(lines), median


def main(argv=None) -> int:
    args = parse(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    rows = [measure(name, args) for name in args.models]
    text, median = table(rows, keras.backend.backend())
    print(text)
    if keras.backend.backend() == "tensorflow":
        each = max(r["lsuv_ratio"] for r in rows)
        print(
            f"- {'PASS' if median <= MEDIAN_TARGET else 'FAIL'} median <= {MEDIAN_TARGET} "
            f"[{median:.2f}]\n- {'PASS' if each <= EACH_TARGET else 'FAIL'} each <= "
            f"{EACH_TARGET} [{each:.2f}]"
        )
    machine = (
        f"keras {keras.__version__}, backend {keras.backend.backend()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, {args.rounds} rounds"
    )
    print(f"\n{machine}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "machine": machine}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
