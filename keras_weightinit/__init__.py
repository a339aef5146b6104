"""Glorot, LeCun and He weight initialization for Keras 3.

Importing the package registers its initializers with Keras, so their string
names (`"he_uniform_custom"`, ...) work in any layer and saved models that use
them reload. Import it before loading such a model.
"""

# First, before anything imports Keras: quiets TensorFlow's start-up lines in
# the `keras-weightinit` command's own process, and only there (see _startup).
from keras_weightinit import _startup  # noqa: F401
from keras_weightinit._kinds import layer_fans as layer_fans
from keras_weightinit.activations import resolve_activation as resolve_activation
from keras_weightinit.diagnostics import Diagnosis as Diagnosis
from keras_weightinit.diagnostics import LayerSignal as LayerSignal
from keras_weightinit.diagnostics import Thresholds as Thresholds
from keras_weightinit.diagnostics import diagnose as diagnose
from keras_weightinit.factory import for_activation as for_activation
from keras_weightinit.fans import Fans as Fans
from keras_weightinit.fans import compute_fans as compute_fans
from keras_weightinit.gains import gain as gain
from keras_weightinit.initializers import GlorotNormalCustom as GlorotNormalCustom
from keras_weightinit.initializers import GlorotUniformCustom as GlorotUniformCustom
from keras_weightinit.initializers import HeNormalCustom as HeNormalCustom
from keras_weightinit.initializers import HeUniformCustom as HeUniformCustom
from keras_weightinit.initializers import LecunNormalCustom as LecunNormalCustom
from keras_weightinit.initializers import LecunUniformCustom as LecunUniformCustom
from keras_weightinit.initializers import TracedCallWarning as TracedCallWarning
from keras_weightinit.initializers import (
    VarianceScalingCustom as VarianceScalingCustom,
)
from keras_weightinit.model_init import initialize as initialize
from keras_weightinit.registry import get as get
from keras_weightinit.report import InitReport as InitReport
from keras_weightinit.report import LayerInit as LayerInit
from keras_weightinit.report import SignalOutOfBandError as SignalOutOfBandError
from keras_weightinit.report import UnstableActivationError as UnstableActivationError

__version__ = "0.1.0"

__all__ = [
    "GlorotNormalCustom",
    "GlorotUniformCustom",
    "HeNormalCustom",
    "HeUniformCustom",
    "LecunNormalCustom",
    "LecunUniformCustom",
    "VarianceScalingCustom",
    "Diagnosis",
    "Fans",
    "InitReport",
    "LayerInit",
    "SignalOutOfBandError",
    "TracedCallWarning",
    "UnstableActivationError",
    "LayerSignal",
    "Thresholds",
    "compute_fans",
    "diagnose",
    "for_activation",
    "gain",
    "get",
    "initialize",
    "layer_fans",
    "resolve_activation",
]
