"""The context an agent is shown first: repository rules, the files its task names, past runs on
them and a ranked map of the code, all read from the committed tree within a token budget.

``gather_context`` is the entry point; ``rules`` and ``repomap`` are its parts.
"""

from shipyard.agent.context.gather import (
    SECTIONS,
    AgentContext,
    Inputs,
    Section,
    gather_context,
    named_files,
)
from shipyard.agent.context.repomap import RepoMap, build_repo_map
from shipyard.agent.context.rules import RULES_PATHS, CommitTree, RulesFile, read_rules

__all__ = [
    "RULES_PATHS",
    "SECTIONS",
    "AgentContext",
    "CommitTree",
    "Inputs",
    "RepoMap",
    "RulesFile",
    "Section",
    "build_repo_map",
    "gather_context",
    "named_files",
    "read_rules",
]
