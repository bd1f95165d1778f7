"""The all-in-one local platform behind ``storefront-jobs dev``.

:mod:`.supervisor` runs child processes and guarantees none outlives it;
:mod:`.children` says what each child is (command, environment, readiness
probe); :mod:`.platform` starts the broker, the worker pools and the demo in
order and stops them in reverse; :mod:`.status` renders what is going on.
Another service of the platform (admin API, Flower, beat) is one more spec
in :mod:`.children` and one more start step in :mod:`.platform`.
"""

from __future__ import annotations

from storefront_jobs.devserver.platform import DevOptions, parse_rate, run_dev

__all__ = ["DevOptions", "parse_rate", "run_dev"]
