"""The policy: presets as data, gitignore-style path guardrails, and the pure ``decide()``."""

from .config import PolicyConfig
from .decide import decide
from .explain import render_reasons
from .guardrails import PathRules
from .presets import PRESETS, load_policy

__all__ = ["PRESETS", "PathRules", "PolicyConfig", "decide", "load_policy", "render_reasons"]
