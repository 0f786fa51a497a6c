"""The forge fixtures (a user's repository on main) serve the queue tests too."""

from tests.forge.conftest import user_repo

__all__ = ["user_repo"]
