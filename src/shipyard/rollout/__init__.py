"""Staged rollout after a merge: deploy in stages, watch a health signal, revert on a breach."""
