"""Second test pass: the whole suite again on PostgreSQL and the channels-redis layer.

`make test` runs it after the embedded pass. Without the services it is skipped, unless
LINNET_REQUIRE_SERVICES=1 (as in CI), which makes a missing service a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.services import service_reachable

DATABASE_URL = os.environ.get("LINNET_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/linnet")
REDIS_URL = os.environ.get("LINNET_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def main() -> int:
    missing = [
        name
        for name, url, port in (("PostgreSQL", DATABASE_URL, 5432), ("Redis", REDIS_URL, 6379))
        if not service_reachable(url, port)
    ]
    if missing:
        message = f"scale-out pass: {', '.join(missing)} not reachable"
        if os.environ.get("LINNET_REQUIRE_SERVICES") == "1":
            print(f"{message}, and LINNET_REQUIRE_SERVICES=1", file=sys.stderr)
            return 1
        print(f"{message}; skipped (set LINNET_REQUIRE_SERVICES=1 to make this a failure)")
        return 0
    print(f"scale-out pass: DATABASE_URL={DATABASE_URL} REDIS_URL={REDIS_URL}", flush=True)
    env = {**os.environ, "DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL}
    # The multi-process test brings its own database and ran in the first pass already.
    return subprocess.call([sys.executable, "-m", "pytest", "-m", "not multiprocess", *sys.argv[1:]], env=env)


if __name__ == "__main__":
    sys.exit(main())
