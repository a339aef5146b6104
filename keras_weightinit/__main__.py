"""`python -m keras_weightinit`: the `keras-weightinit` command.

Python imports the package before this module runs; the package's first
import, `keras_weightinit._startup`, has quieted TensorFlow's start-up lines
by then, as for the `keras-weightinit` console script.
"""

import sys

from keras_weightinit.cli import main

if __name__ == "__main__":
    sys.exit(main())
