"""The all-in-one local platform behind ``storefront-jobs dev``.

:mod:`.supervisor` runs child processes and guarantees none outlives it;
:mod:`.children` says what the broker and each worker pool is (command,
environment, readiness probe), and :mod:`.services` the same for beat, the
admin API and Flower, with the credentials dev makes for them;
:mod:`.platform` starts them all in order and stops them in reverse;
:mod:`.status` renders what is going on; :mod:`.options` is what the
developer chose. Another service is one more spec in :mod:`.services`.
"""

from __future__ import annotations

from storefront_jobs.devserver.options import DevOptions, parse_rate
from storefront_jobs.devserver.platform import run_dev

__all__ = ["DevOptions", "parse_rate", "run_dev"]
