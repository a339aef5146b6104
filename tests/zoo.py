"""The model zoo: real architectures at tiny sizes, in one place.

Shared by the zoo tests (`tests/test_real_models.py`,
`tests/test_diagnose_models.py`, `tests/test_residual.py`) and by the sweep
`benchmarks/model_zoo.py`, so that a test and the benchmark always build the
same model at the same size. Every model is built from constructor arguments:
keras.applications with `weights=None`, keras-hub backbones from tiny
configs. Nothing is downloaded.

This module imports only Keras and NumPy (keras-hub when a backbone is
built), neither pytest nor `keras_weightinit` nor `tests.helpers`: the
benchmark, run as a script, loads it by its file path (see
`benchmarks/model_zoo.py`), so it must stand alone.
"""

from __future__ import annotations

import keras

IMAGE_SIZE = 32  # the smallest input most keras.applications accept
CLASSES = 10
VOCAB = 1000

#: The tiny keras-hub text config: 2 layers, 2 heads, hidden 64, vocabulary 1000.
HUB_TEXT = dict(
    vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=128
)

#: Each keras-hub backbone of the zoo with its tiny constructor arguments;
#: text backbones with a position table also take `max_sequence_length`.
HUB = {
    "BertBackbone": HUB_TEXT,
    "GPT2Backbone": HUB_TEXT,
    "BartBackbone": HUB_TEXT,
    "DistilBertBackbone": HUB_TEXT,
    "RobertaBackbone": HUB_TEXT,
    "T5Backbone": {**HUB_TEXT, "key_value_dim": 32},
    "LlamaBackbone": dict(
        vocabulary_size=VOCAB,
        num_layers=2,
        num_query_heads=2,
        num_key_value_heads=2,
        hidden_dim=64,
        intermediate_dim=128,
    ),
    "ViTBackbone": dict(
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=64,
        mlp_dim=128,
    ),
}


def _seed(seed: int | None) -> None:
    if seed is not None:
        keras.utils.set_random_seed(seed)


def application(name: str, size: int = IMAGE_SIZE, *, seed: int | None = 0, **kwargs):
    """`keras.applications.<name>(weights=None)` on `size`×`size`×3 inputs, 10 classes.

    `kwargs` go to the constructor (e.g. `classifier_activation=None` for
    logits, `include_preprocessing=False`). `seed` (None: leave the global
    seed alone) makes Keras's own initializers repeatable.
    """
    _seed(seed)
    return getattr(keras.applications, name)(
        weights=None, input_shape=(size, size, 3), classes=CLASSES, **kwargs
    )


def hub_backbone(name: str, *, seed: int | None = 0, **kwargs):
    """`keras_hub.models.<name>` with its tiny config from `HUB`, updated by `kwargs`.

    Raises ImportError without keras-hub (tests guard with
    `pytest.importorskip("keras_hub")`).
    """
    import keras_hub

    _seed(seed)
    return getattr(keras_hub.models, name)(**{**HUB[name], **kwargs})


# -- hand-built models ----------------------------------------------------------


def residual_mlp(depth: int = 24, width: int = 128) -> keras.Model:
    """`x = x + Dense(Dense_relu(x))` `depth` times, no normalization."""
    inp = keras.Input((width,))
    x = inp
    for _ in range(depth):
        h = keras.layers.Dense(width, activation="relu")(x)
        x = keras.layers.Add()([x, keras.layers.Dense(width)(h)])
    return keras.Model(inp, x)


def pre_ln_transformer(depth: int = 8, dim: int = 64, seq: int = 16) -> keras.Model:
    """`depth` pre-LN blocks: `x + MHA(LN(x))`, then `x + FFN_gelu(LN(x))`."""
    inp = keras.Input((seq, dim))
    x = inp
    for _ in range(depth):
        h = keras.layers.LayerNormalization()(x)
        x = keras.layers.Add()([x, keras.layers.MultiHeadAttention(4, dim // 4)(h, h)])
        h = keras.layers.LayerNormalization()(x)
        h = keras.layers.Dense(4 * dim, activation="gelu")(h)
        x = keras.layers.Add()([x, keras.layers.Dense(dim)(h)])
    return keras.Model(inp, x)


def text_classifier(cell: str, seq: int = 16) -> keras.Model:
    """Embedding(1000, 64), a bidirectional `cell` ("LSTM", "GRU"), another, two Dense."""
    layer = getattr(keras.layers, cell)
    inputs = keras.Input((seq,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, 64)(inputs)
    x = keras.layers.Bidirectional(layer(64, return_sequences=True))(x)
    x = layer(64)(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x), name=f"{cell.lower()}_classifier")


def unet(size: int = IMAGE_SIZE) -> keras.Model:
    """A small U-Net: three 2×conv-BN-ReLU levels (16, 32, 64), a 128 bottom, 2 outputs."""
    L = keras.layers
    inputs = keras.Input((size, size, 3))

    def block(x, f):
        x = L.Conv2D(f, 3, padding="same", use_bias=False)(x)
        x = L.ReLU()(L.BatchNormalization()(x))
        x = L.Conv2D(f, 3, padding="same", use_bias=False)(x)
        return L.ReLU()(L.BatchNormalization()(x))

    skips, x = [], inputs
    for f in (16, 32, 64):
        x = block(x, f)
        skips.append(x)
        x = L.MaxPooling2D()(x)
    x = block(x, 128)
    for f, skip in zip((64, 32, 16), reversed(skips)):
        x = L.Conv2DTranspose(f, 2, strides=2, activation="relu")(x)
        x = block(L.Concatenate()([x, skip]), f)
    return keras.Model(inputs, L.Conv2D(2, 1)(x), name="unet")
