"""``python -m onnx_search.cli``."""

import sys

from . import main

sys.exit(main())
