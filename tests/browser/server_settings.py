"""Settings for the `serve` process the browser tests drive: notes slow enough to stop mid-run."""

from linnet_site.settings import *  # noqa: F403

AGENT_NOTES_PACE_S = 0.4
