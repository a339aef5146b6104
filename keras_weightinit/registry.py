"""One decorator that makes a class public to Keras, and name lookup.

`register("he_uniform_custom")` does both things Keras needs:

- registers the class for serialization under `"keras_weightinit>ClassName"`,
  the `registered_name` a saved model stores and reloads by;
- adds the string alias to `keras.saving.get_custom_objects()`, so that
  `Dense(64, kernel_initializer="he_uniform_custom")` and
  `keras.initializers.get("he_uniform_custom")` resolve.

Neither a class name nor an alias may equal a Keras built-in: a global alias
`"glorot_uniform"` would replace Keras's own for every layer in the process,
and a class named `HeUniform` would be loaded as Keras's `HeUniform` by a
process that did not import this package. `register` refuses both.
"""

from __future__ import annotations

import difflib
from typing import Any

import keras

from keras_weightinit import _keras_internals as internals

PACKAGE = "keras_weightinit"

#: Our string aliases, in registration order: alias -> class.
ALIASES: dict[str, type] = {}


def _keras_builtin_names() -> set[str]:
    # Keras's own lookup table for `keras.initializers.get`/`deserialize`.
    return internals.initializer_names()


def register(alias: str):
    """Registers a class for serialization and under a string alias.

    Args:
        alias: The snake_case name users pass as a string identifier.

    Raises:
        ValueError: if the alias or the class name is a Keras built-in name,
            or the alias is taken by another class.
    """

    def decorator(cls: type) -> type:
        builtins = _keras_builtin_names()
        for name in (alias, cls.__name__):
            if name in builtins:
                raise ValueError(
                    f"Refusing to register {cls.__name__!r} as {name!r}: "
                    "that name is a Keras built-in and would shadow it."
                )
        custom = keras.saving.get_custom_objects()
        if custom.get(alias, cls) is not cls:
            raise ValueError(
                f"The initializer name {alias!r} is already registered to "
                f"{custom[alias]!r}. Received: {cls!r}"
            )
        cls = keras.saving.register_keras_serializable(package=PACKAGE)(cls)
        custom[alias] = cls
        ALIASES[alias] = cls
        return cls

    return decorator


def known_names() -> list[str]:
    """Every string an initializer identifier may be: ours and Keras's."""
    return sorted(set(ALIASES) | _keras_builtin_names())


def get(identifier: Any):
    """Resolves an initializer identifier, like `keras.initializers.get`.

    It accepts what Keras accepts (a name, a config dict, an instance, a
    class, a callable) and differs in two ways:

    - an unknown name, or a config dict naming an unknown class, raises a
      `ValueError` that suggests the closest known names;
    - a config dict may name one of our classes by its bare class name
      (`{"class_name": "HeNormalCustom", "config": {}}`), not only by its
      registered name `"keras_weightinit>HeNormalCustom"`.

    It is the safe path for such dicts: Keras's own
    `keras.initializers.get` refuses the bare class name ("Could not
    interpret initializer identifier"), and `keras.initializers.deserialize`
    returns the *string* `"HeNormalCustom"` for it, not an initializer (a
    Keras quirk: a class name it cannot find is handed back as a name).

    >>> get("he_uniform_custom")
    HeUniformCustom(seed=None, input_axes=None, output_axes=None)
    >>> get({"class_name": "HeNormalCustom", "config": {"seed": 1}})
    HeNormalCustom(seed=1, input_axes=None, output_axes=None)

    Args:
        identifier: the identifier to resolve.

    Returns:
        An initializer (or `None` for `None`).

    Raises:
        ValueError: for an unknown name or class name, with suggestions.
    """
    if isinstance(identifier, dict) and isinstance(identifier.get("class_name"), str):
        identifier = _with_registered_name(identifier)
    if (
        isinstance(identifier, str)
        and identifier not in set(keras.saving.get_custom_objects()) | _keras_builtin_names()
    ):
        close = difflib.get_close_matches(identifier, known_names(), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown initializer name.{hint} Names this package adds: "
            f"{', '.join(ALIASES)}. Received: initializer={identifier!r}"
        )
    return keras.initializers.get(identifier)


def _with_registered_name(identifier: dict) -> dict:
    """`identifier` with our bare class name replaced by the registered one."""
    name = identifier["class_name"]
    ours = {cls.__name__: cls for cls in ALIASES.values()}
    if name in ours and "registered_name" not in identifier:
        return {**identifier, "class_name": f"{PACKAGE}>{name}"}
    known = (
        set(keras.saving.get_custom_objects())
        | _keras_builtin_names()
        | {f"{PACKAGE}>{n}" for n in ours}
        | set(ours)
    )
    if name not in known and identifier.get("registered_name") not in known:
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown initializer class name {name!r}.{hint} This package's classes: "
            f"{', '.join(sorted(ours))} (registered as '{PACKAGE}>ClassName'). "
            f"Received: initializer={identifier!r}"
        )
    return identifier
