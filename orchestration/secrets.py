"""`LAKEMAIL_SECRET` for local runs: taken from the environment, else made once under LAKEMAIL_HOME.

Resources read it through `dg.EnvVar("LAKEMAIL_SECRET")`; this only makes sure the variable is set
for `make run` and the CLI on a machine with no configuration (a production deployment sets it).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import MutableMapping
from pathlib import Path

SECRET_VARIABLE = "LAKEMAIL_SECRET"


def ensure_secret(home: Path, environ: MutableMapping[str, str] = os.environ) -> str:
    """The secret from `environ`, else from `home/.secret` (made 0600 on first use), exported to `environ`."""
    value = environ.get(SECRET_VARIABLE)
    if value:
        return value
    path = home / ".secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    value = path.read_text().strip()
    environ[SECRET_VARIABLE] = value
    return value
