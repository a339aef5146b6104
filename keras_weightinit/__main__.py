"""`python -m keras_weightinit`: the `keras-weightinit` command."""

import os
import sys

# TensorFlow's C++ start-up messages are noise on a terminal; set before
# Keras imports its backend.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_weightinit.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
