"""``python -m bench``: every row of issue 12 (bench/runner.py); ``python -m bench NAME …``: the
bench of that name alone (``python -m bench.NAME …``), e.g. ``python -m bench aap --check``."""

import importlib
import sys

ALONE = ("aap", "throughput", "delivery_faults", "profile", "memory")

if len(sys.argv) > 1 and sys.argv[1] in ALONE:
    # Imported only now: a bench names its own database (BENCH_DB_NAME) before the runner's
    # module reads it.
    name = sys.argv.pop(1)
    sys.argv[0] = f"bench.{name}"
    importlib.import_module(f"bench.{name}").main()
else:
    from bench.runner import main

    main()
