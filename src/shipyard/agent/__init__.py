"""Agents: a model loop on the host whose every tool call runs in the run's sandbox.

``messages`` holds the value types every part shares; ``providers`` talk to models; ``tools`` is the
toolshed; ``loop`` drives a conversation within its budget; ``transcript`` keeps every message and
``compaction`` shortens the context without losing anything; ``context`` gathers what the model is
shown first.
"""
