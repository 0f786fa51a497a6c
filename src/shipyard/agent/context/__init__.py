"""The context an agent is shown first: repository rules, the files its task names, past runs on
them, code chunks like the task (local embeddings) and a ranked map of the code, all read from the
committed tree within a token budget.

``gather_context`` is the entry point; ``rules``, ``repomap`` and ``retrieval`` (with ``chunks``,
``embeddings`` and ``vectors``) are its parts.
"""

from shipyard.agent.context.embeddings import RetrievalUnavailable
from shipyard.agent.context.gather import (
    SECTIONS,
    AgentContext,
    Inputs,
    Section,
    gather_context,
    named_files,
)
from shipyard.agent.context.repomap import RepoMap, build_repo_map
from shipyard.agent.context.retrieval import Retriever, open_retriever
from shipyard.agent.context.rules import RULES_PATHS, CommitTree, RulesFile, read_rules

__all__ = [
    "RULES_PATHS",
    "SECTIONS",
    "AgentContext",
    "CommitTree",
    "Inputs",
    "RepoMap",
    "RetrievalUnavailable",
    "Retriever",
    "RulesFile",
    "Section",
    "build_repo_map",
    "gather_context",
    "named_files",
    "open_retriever",
    "read_rules",
]
