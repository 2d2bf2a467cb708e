"""`python -m benchmark` runs the diffres-bench console script."""

from benchmark.cli import main

raise SystemExit(main())
