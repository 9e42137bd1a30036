"""A GitLab REST v4 emulator for tests: real HTTP, real git, python-gitlab as the client.

    emulator = GitLabEmulator(tmp_path)               # or the ``gitlab_emulator`` fixture
    pid = emulator.create_project("platform/cd-config", {"apps/web/values.yaml": "..."})
    url = emulator.start()                            # http://127.0.0.1:<port>
    gl = gitlab.Gitlab(url, private_token=emulator.token)

The token belongs to the bot user (a Developer in every project it creates; raise it with
``add_member(pid, emulator.bot_user_id, MAINTAINER)``). Humans act through helpers that bypass
the API: ``push_as``, ``open_mr_as``, ``comment_as``, ``merge``, ``close_as``. Faults:
``inject(status=429, retry_after=0)``, ``inject(status=502)``, ``inject(status=200, delay=1)``.
Each project is a bare git repository at ``repo_path(pid)``; API commits are real commits.
Webhooks: ``add_hook(pid, url, token=...)`` (or ``POST /projects/:id/hooks`` as a Maintainer);
deliveries go out in order from one thread, ``flush_hooks()`` waits for them.
"""

from __future__ import annotations

from .api import ApiError
from .server import GitLabEmulator
from .state import DEVELOPER, GUEST, MAINTAINER, OWNER, REPORTER

__all__ = ["DEVELOPER", "GUEST", "MAINTAINER", "OWNER", "REPORTER", "ApiError", "GitLabEmulator"]
