"""The built-in tools and the toolshed that holds them; blueprints grant subsets by name."""

from __future__ import annotations

from shipyard.agent.tools.base import Tool, Toolshed
from shipyard.agent.tools.command import Finish, RunCommand, RunTests
from shipyard.agent.tools.edit import ApplyPatch, EditFile, WriteFile
from shipyard.agent.tools.files import ListFiles, ReadFile, Search


def builtin_tools() -> list[Tool]:
    """One of each built-in tool: read_file, list_files, search, edit_file, write_file,
    apply_patch, run_command, run_tests and finish."""
    return [
        ReadFile(),
        ListFiles(),
        Search(),
        EditFile(),
        WriteFile(),
        ApplyPatch(),
        RunCommand(),
        RunTests(),
        Finish(),
    ]


def default_toolshed() -> Toolshed:
    """Every built-in tool, for blueprints to grant from."""
    return Toolshed(builtin_tools())
