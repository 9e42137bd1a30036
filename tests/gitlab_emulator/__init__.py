"""A GitLab REST v4 emulator for tests: real HTTP, real git, python-gitlab as the client."""

from __future__ import annotations

from .server import GitLabEmulator
from .state import DEVELOPER, GUEST, MAINTAINER, OWNER, REPORTER

__all__ = ["DEVELOPER", "GUEST", "MAINTAINER", "OWNER", "REPORTER", "GitLabEmulator"]
