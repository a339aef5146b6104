"""`python -m keras_weightinit`: the `keras-weightinit` command.

Python imports the package (and so Keras and its backend) before this
module runs, so nothing here can quiet TensorFlow's start-up lines; the
`keras-weightinit` console script does (see `keras_weightinit_cli`).
"""

import sys

from keras_weightinit.cli import main

if __name__ == "__main__":
    sys.exit(main())
