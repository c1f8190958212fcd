"""The benchmark suite (issue 12): ``bench/run`` or ``python -m bench``; see bench/README.md."""
