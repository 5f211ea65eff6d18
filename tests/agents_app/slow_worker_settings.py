"""Settings for a real `linnet_worker` in the process tests: notes written slowly enough to catch mid-run."""

from linnet_site.settings import *  # noqa: F403

AGENT_NOTES_PACE_S = 0.25
AGENT_CLAIM_INTERVAL_S = 0.2
