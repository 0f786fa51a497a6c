"""Gates: checks the harness runs on committed trees in fresh sandboxes, each returning facts.

One module per gate (tests, coverage, static, resolution, performance, integrity, flaky); the
harness (``harness.py``) runs them and hands their verdicts to the policy.
"""
