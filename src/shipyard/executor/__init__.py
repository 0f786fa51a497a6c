"""Executors run blueprints for tasks: in-process by default."""

from shipyard.executor.local import EventListener, LocalExecutor

__all__ = ["EventListener", "LocalExecutor"]
