"""Real architectures through ``keras_weightinit.initialize``, side by side with Keras's default.

For each model (keras.applications with ``weights=None`` at the smallest input
each accepts and ``classifier_activation=None``; keras-hub backbones built
from tiny constructor arguments, never downloaded; an LSTM/GRU text
classifier; a small U-Net), the script measures, with N(0, 1) inputs (token
ids for text) in inference mode:

- ``keras``: the model as built (Keras's and keras-hub's own initializers);
- ``analytic``: ``initialize(model)`` (default ``residual="auto"``), on the
  same model;
- ``lsuv``: ``initialize(fresh_copy, batch)``, then ``report.check(0.9, 1.1)``.

It records exceptions, kernels initialized and skipped (with the reasons),
residual branches found and what was done to each, the largest std over the
residual stream (every ``Add`` / ``+`` output, and the output of every
keras-hub block that adds inside ``call``), the logits' std (for a keras-hub
backbone with a token embedding: the tied projection ``embedding(x,
reverse=True)`` of its output), and whether a training-mode pass is finite.

A model misses if anything raises, if after the analytic ``initialize`` the
largest stream std or the logits std is outside [0.05, 10], if a
training-mode pass is not finite, or if ``report.check(0.9, 1.1)`` fails after
LSUV. The script exits 1 on a miss.

Run: ``KERAS_BACKEND=tensorflow python benchmarks/model_zoo.py [--models ResNet50 GPT2Backbone]``.
"""

from __future__ import annotations

import argparse
import collections
import gc
import importlib.util
import os
import platform
import re
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_weightinit as kwi  # noqa: E402
from keras_weightinit import _keras_internals as internals  # noqa: E402

BAND = (0.05, 10.0)  # stream and logits std after the analytic initialize
LSUV_BAND = (0.9, 1.1)
SEED = 0
BATCH = 16  # LSUV's least batch
SEQ = 16


def _load_zoo():
    """tests/zoo.py, the builders and tiny configs the zoo tests use too.

    Loaded by its path: this script runs with benchmarks/ first on sys.path,
    and putting the checkout there instead would change which
    keras_weightinit it imports. tests/zoo.py imports only Keras (and
    keras-hub when asked), so it needs nothing else from tests/.
    """
    path = Path(__file__).resolve().parents[1] / "tests" / "zoo.py"
    spec = importlib.util.spec_from_file_location("keras_weightinit_test_zoo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


zoo_models = _load_zoo()
VOCAB = zoo_models.VOCAB


def _app(name: str, size: int = 32, **extra):
    def build():
        # The caller seeds (run_one): seed=None leaves the global seed alone.
        try:
            return zoo_models.application(
                name, size, seed=None, classifier_activation=None, **extra
            )
        except TypeError:  # a constructor without `classifier_activation`
            return zoo_models.application(name, size, seed=None, **extra)

    return build, ("image", (size, size, 3))


def _hub(name: str, **kwargs):
    def build():
        return zoo_models.hub_backbone(name, seed=None, **kwargs)

    return build, ("tokens", None)


def zoo() -> dict:
    image = ("image", (32, 32, 3))
    tokens = ("tokens", None)
    return {
        "ResNet50": _app("ResNet50"),
        "ResNet50V2": _app("ResNet50V2"),
        "ResNet101": _app("ResNet101"),
        "MobileNetV2": _app("MobileNetV2"),
        "MobileNetV3Small": _app("MobileNetV3Small", include_preprocessing=False),
        "EfficientNetB0": _app("EfficientNetB0"),
        "EfficientNetV2B0": _app("EfficientNetV2B0", include_preprocessing=False),
        "Xception": _app("Xception", size=71),
        "DenseNet121": _app("DenseNet121"),
        "NASNetMobile": _app("NASNetMobile"),
        "ConvNeXtTiny": _app("ConvNeXtTiny", include_preprocessing=False),
        "VGG16": _app("VGG16"),
        "BertBackbone": _hub("BertBackbone", max_sequence_length=SEQ),
        "GPT2Backbone": _hub("GPT2Backbone", max_sequence_length=SEQ),
        "LlamaBackbone": _hub("LlamaBackbone"),
        "ViTBackbone": (_hub("ViTBackbone")[0], image),
        "BartBackbone": _hub("BartBackbone", max_sequence_length=SEQ),
        "T5Backbone": _hub("T5Backbone"),
        "DistilBertBackbone": _hub("DistilBertBackbone", max_sequence_length=SEQ),
        "RobertaBackbone": _hub("RobertaBackbone", max_sequence_length=SEQ),
        "LSTMClassifier": (lambda: zoo_models.text_classifier("LSTM", SEQ), tokens),
        "GRUClassifier": (lambda: zoo_models.text_classifier("GRU", SEQ), tokens),
        "UNet": (zoo_models.unet, image),
    }


def make_inputs(model, kind: str, shape, seed: int):
    """A batch for `model`: N(0, 1) images, token ids, all-ones masks."""
    rng = np.random.default_rng(seed)
    if kind == "image" and not isinstance(model.input, dict):
        x = rng.standard_normal((BATCH, *shape)).astype("float32")
        return x / _input_rescaling(model)
    out = {}
    specs = model.input if isinstance(model.input, dict) else {"x": model.input}
    for key, spec in specs.items():
        dims = [BATCH] + [d if d is not None else SEQ for d in spec.shape[1:]]
        if "mask" in key:
            out[key] = np.ones(dims, dtype="int32")
        elif "segment" in key:
            out[key] = np.zeros(dims, dtype="int32")
        elif "int" in str(spec.dtype):
            out[key] = rng.integers(1, VOCAB, dims).astype("int32")
        else:
            out[key] = rng.standard_normal(dims).astype("float32")
    return out if isinstance(model.input, dict) else out["x"]


def _input_rescaling(model) -> float:
    """The scale of the `Rescaling` layers a model starts with (EfficientNetB0's 1/255).

    Such a model expects pixels; dividing the N(0, 1) batch by the scale gives
    its first kernel N(0, 1), as the other models' first kernels get.
    """
    scale = 1.0
    for layer in model.layers[1:4]:
        if isinstance(layer, keras.layers.Rescaling) and np.ndim(layer.scale) == 0:
            scale *= float(layer.scale)
    return scale


_BLOCK = re.compile(r"(Encoder|Decoder|DecoderBlock|EncoderBlock|TransformerLayer|DecoderLayer)$")


def _first(t):
    while isinstance(t, (tuple, list)):
        t = t[0]
    return t


def stream_tensors(model) -> list:
    """The residual stream's tensors: every Add/`+` output and every keras-hub block's."""
    out = []
    for op in model.operations:
        is_block = type(op).__module__.startswith("keras_hub.") and _BLOCK.search(type(op).__name__)
        if isinstance(op, (keras.layers.Add, internals.add_op_class())) or is_block:
            for node in internals.inbound_nodes(op):
                if node.output_tensors:
                    out.append(_first(node.output_tensors))
    return out


def _std(x) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64).std())


def _logits(model, out):
    """The model's output; a keras-hub backbone's through its tied token embedding."""
    if isinstance(out, dict):
        first = next(iter(out.values()))
        out = out.get("sequence_output", out.get("decoder_sequence_output", first))
    emb = getattr(model, "token_embedding", None)
    if emb is not None and "Reversible" in type(emb).__name__:
        return emb(out, reverse=True)
    return out


def measure(model, x) -> dict:
    """Stream and logits std in inference mode; finiteness in training mode."""
    streams = stream_tensors(model)
    rest = keras.Model(model.inputs, streams)(x, training=False) if streams else []
    logits = _logits(model, model(x, training=False))
    train = model(x, training=True)
    finite = all(
        bool(np.isfinite(keras.ops.convert_to_numpy(t)).all())
        for t in keras.tree.flatten(train)
        if "float" in str(t.dtype)
    )
    return {
        "stream": max((_std(t) for t in rest), default=float("nan")),
        "n_stream": len(rest),
        "logits": _std(logits),
        "finite": finite,
    }


def _reasons(items) -> str:
    counts = collections.Counter(f"{s.layer_type}: {s.reason}" for s in items)
    return "; ".join(f"{n}× {r}" for r, n in counts.most_common())


def _phase(row, phase, fn) -> None:
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - a sweep records every failure
        row["errors"].append(f"{phase}: {type(e).__name__}: {str(e)[:300]}")
        if os.environ.get("ZOO_TRACE"):
            traceback.print_exc()


def run_one(name: str, build, kind, shape) -> dict:
    row = {"model": name, "errors": []}
    t0 = time.perf_counter()
    state = {}

    def keras_default():
        keras.utils.set_random_seed(SEED)
        state["model"] = build()
        state["x"] = make_inputs(state["model"], kind, shape, SEED)
        row["keras"] = measure(state["model"], state["x"])

    def analytic():
        report = kwi.initialize(state["model"], seed=SEED)
        row["initialized"] = len(report)
        # Normalizations own no kernel: they are kept by design, not skipped.
        row["skipped"] = [
            s for s in report.skipped if not s.container and "no kernel" not in s.reason
        ]
        row["residual"] = collections.Counter(b.action for b in report.residual)
        row["residual_rows"] = report.residual
        row["analytic"] = measure(state["model"], state["x"])

    def lsuv():
        keras.utils.set_random_seed(SEED)
        model = build()
        report = kwi.initialize(model, make_inputs(model, kind, shape, SEED + 1), seed=SEED)
        try:
            report.check(*LSUV_BAND)
            row["lsuv_check"] = "pass"
        except kwi.SignalOutOfBandError as e:
            row["lsuv_check"] = "FAIL"
            row["errors"].append(f"lsuv check: {str(e)[:300]}")
        row["lsuv"] = measure(model, state.get("x", make_inputs(model, kind, shape, SEED)))

    _phase(row, "keras", keras_default)
    if "model" in state:
        _phase(row, "analytic", analytic)
    state.pop("model", None)
    keras.backend.clear_session()
    gc.collect()
    _phase(row, "lsuv", lsuv)
    keras.backend.clear_session()
    gc.collect()
    row["seconds"] = time.perf_counter() - t0
    return row


def misses(row) -> list[str]:
    out = list(row["errors"])
    a = row.get("analytic")
    if a:
        lo, hi = BAND
        if not lo <= a["stream"] <= hi and a["n_stream"]:
            out.append(f"stream std {a['stream']:.3g} outside [{lo}, {hi}]")
        if not lo <= a["logits"] <= hi:
            out.append(f"logits std {a['logits']:.3g} outside [{lo}, {hi}]")
        if not a["finite"]:
            out.append("training-mode pass not finite")
    return out


def fmt(x) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "-"
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 or x == 0 else f"{x:.1e}"


def _cell(m, key) -> str:
    return fmt(m[key]) if m else "error"


def table(rows) -> str:
    lines = [
        "| model | kernels init / skipped | residual branches | max stream std: Keras | ours "
        "| logits std: Keras | ours | train finite | LSUV check(0.9, 1.1) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        k, a = r.get("keras"), r.get("analytic")
        res = ", ".join(f"{n} {act}" for act, n in r.get("residual", {}).items()) or "none"
        fin = "-" if not a else ("yes" if a["finite"] else "NO")
        lines.append(
            f"| {r['model']} | {r.get('initialized', '-')} / {len(r.get('skipped', []))} | {res} "
            f"| {_cell(k, 'stream')} | {_cell(a, 'stream')} | {_cell(k, 'logits')} "
            f"| {_cell(a, 'logits')} | {fin} | {r.get('lsuv_check', '-')} |"
        )
    return "\n".join(lines)


def rich_table(rows):
    from rich.table import Table

    t = Table(title="keras_weightinit.initialize on real architectures (N(0,1) inputs, inference)")
    for col in (
        "model",
        "init/skip",
        "residual",
        "stream Keras",
        "stream ours",
        "logits Keras",
        "logits ours",
        "finite",
        "LSUV",
        "s",
        "misses",
    ):
        t.add_column(col, overflow="fold")
    for r in rows:
        k, a = r.get("keras"), r.get("analytic")
        res = ", ".join(f"{n} {act}" for act, n in r.get("residual", {}).items()) or "none"
        bad = misses(r)
        t.add_row(
            r["model"],
            f"{r.get('initialized', '-')}/{len(r.get('skipped', []))}",
            res,
            _cell(k, "stream"),
            _cell(a, "stream"),
            _cell(k, "logits"),
            _cell(a, "logits"),
            "-" if not a else ("yes" if a["finite"] else "NO"),
            r.get("lsuv_check", "-"),
            f"{r['seconds']:.0f}",
            "[red]" + "; ".join(bad)[:300] + "[/red]" if bad else "[green]ok[/green]",
        )
    return t


def main(argv=None) -> int:
    models = zoo()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=list(models), choices=list(models))
    parser.add_argument("--markdown", action="store_true", help="print a markdown table too")
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console(width=200)
    console.print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    rows = []
    for name in args.models:
        build, (kind, shape) = models[name]
        row = run_one(name, build, kind, shape)
        rows.append(row)
        console.print(f"{name}: {row['seconds']:.0f} s; misses: {misses(row) or 'none'}")
        if row.get("skipped"):
            console.print(f"  skipped: {_reasons(row['skipped'])[:600]}")
        kept = [b for b in row.get("residual_rows", []) if b.action == "kept"]
        for b in kept[:4]:
            console.print(f"  kept {b.site}: {b.reason}")
    console.print(rich_table(rows))
    if args.markdown:
        print(table(rows))
    bad = [r["model"] for r in rows if misses(r)]
    tail = f"; misses: {bad}" if bad else ""
    print(f"{len(rows) - len(bad)} of {len(rows)} models pass{tail}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
