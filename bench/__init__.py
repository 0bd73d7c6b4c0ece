"""
chatsvc's benchmark: the server under test and its baselines as real
processes on loopback, a load generator that is never the bottleneck, and a
report (Markdown table, plots). See bench/README.md.

    python -m bench            # full run, results in bench/results/<date-time>/
    python -m bench --smoke    # seconds; CI runs it (tests/test_bench_smoke.py)
"""
