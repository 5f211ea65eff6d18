"""Test settings: in-memory layer unless REDIS_URL is set, fast hashing, file-backed SQLite."""

import os
import tempfile

from linnet_site.settings import *  # noqa: F403
from linnet_site.settings import DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so worker threads and tests share one database; one per
    # pytest process so parallel runs never share it.
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(tempfile.gettempdir(), f"linnet-test-{os.getpid()}.sqlite3")}

# A connection kept alive on a worker thread would hold the test database open when the run
# tries to drop it; tests open and close their own.
DATABASES["default"]["CONN_MAX_AGE"] = 0
