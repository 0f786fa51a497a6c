"""Helpers of the Renovate comparison (``benchmarks/renovate.py``): reading Renovate's JSON log,
comparing its updates with ``shipyard run deps --dry-run --json``, and building the repositories."""
