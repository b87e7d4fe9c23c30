"""The bounds Sartoris puts on numbers an operator gives it (options, sartoris.toml, folder names): past them,
timers overflow, history queries fail, or host shell arithmetic breaks, so they are refused as bad input."""

MAX_SLOT = 9999  # slot numbers name folders (php-slot0 ...) and history rows
MAX_ENTRIES = 1_000_000  # `log -n`
MAX_SECONDS = 7 * 24 * 3600  # any timeout or interval: no deploy step waits a week on purpose
MAX_RETRIES = 10  # fetch retries, with an exponential backoff
MAX_KEEP_RELEASES = 100  # old trees kept per slot on every host
MAX_USER_NAME = 32  # characters in a login name (useradd's and the ssh servers' limit)
MAX_NAME = 200  # characters in [deploy] name: a tag <name>-slot<N>-<time> is one file name (255 bytes at most)
