"""`python -m benchmarks` (and `lakemail bench`): measure the figures and write BENCHMARKS.md."""

import sys

from benchmarks.run import main

sys.exit(main(sys.argv[1:]))
