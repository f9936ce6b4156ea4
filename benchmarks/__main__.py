"""`python -m benchmarks`: the benchmark of `make bench`."""

import sys

from benchmarks.bench import main

sys.exit(main())
