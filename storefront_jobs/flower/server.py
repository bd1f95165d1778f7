"""Start Flower on a storefront app, with the Dead letters section in it.

``celery flower`` builds its Tornado application inside its click command,
where nothing can be added. This module runs the same steps with Flower's
own functions (options from ``FLOWER_*`` variables and argv, settings,
logging, the banner), then adds the section before the server starts:

* ``template_loader`` (a Tornado application setting) serves Flower's
  templates, ours, and the navbar with a "Dead letters" entry;
* ``Application.add_handlers`` puts our routes ahead of Flower's catch-all;
* with ``FLOWER_PROTECT_MONITORING``, ``/metrics`` and ``/healthcheck`` are
  routed to Flower's own handlers behind Flower's login.

The Flower names used here are listed in :mod:`storefront_jobs.broker.internals`;
``tests/unit/broker/test_private_names.py`` fails when an upgrade changes one.
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import Any

from flower import command as flower_command
from flower.app import Flower
from flower.urls import settings as flower_settings
from flower.views import monitor
from tornado import web
from tornado.options import options as flower_options
from tornado.routing import URLSpec

from storefront_jobs.flower.actions import DeleteView, ReplayView
from storefront_jobs.flower.handler import DeadLetterHandler, Section
from storefront_jobs.flower.pages import AuditView, EntryView, ExportView, ListView
from storefront_jobs.flower.templates import FlowerTemplates


class ProtectedMetrics(monitor.Metrics):  # type: ignore[misc]  # Flower ships no type hints
    """Flower's ``/metrics``, behind its login."""

    @web.authenticated
    async def get(self) -> None:
        await super().get()


class ProtectedHealthcheck(monitor.Healthcheck):  # type: ignore[misc]
    """Flower's ``/healthcheck``, behind its login."""

    @web.authenticated
    async def get(self) -> None:
        await super().get()


def routes(section: Section) -> list[tuple[str, type[DeadLetterHandler], dict[str, Any], str]]:
    """(path, handler, kwargs, name) of every page, before Flower's ``url_prefix``."""
    kwargs = {"section": section}
    return [
        (r"/dead-letters", ListView, kwargs, "dead-letters"),
        (r"/dead-letters/entry/(.+)", EntryView, kwargs, "dead-letter"),
        (r"/dead-letters/replay", ReplayView, kwargs, "dead-letters-replay"),
        (r"/dead-letters/delete", DeleteView, kwargs, "dead-letters-delete"),
        (r"/dead-letters/export", ExportView, kwargs, "dead-letters-export"),
        (r"/dead-letters/audit", AuditView, kwargs, "dead-letters-audit"),
    ]


def prefixed(path: str, url_prefix: str | None) -> str:
    """A route under Flower's ``--url_prefix``, as Flower rewrites its own."""
    return f"/{url_prefix.strip('/')}{path}" if url_prefix else path


def section_routes(section: Section, url_prefix: str | None, *, protect_monitoring: bool) -> list[URLSpec]:
    specs = [
        web.url(prefixed(path, url_prefix), handler, kwargs, name=name)
        for path, handler, kwargs, name in routes(section)
    ]
    if protect_monitoring:
        specs += [
            web.url(prefixed("/metrics", url_prefix), ProtectedMetrics),
            web.url(prefixed("/healthcheck", url_prefix), ProtectedHealthcheck),
        ]
    return specs


def build(capp: Any, argv: Sequence[str], *, protect_monitoring: bool) -> tuple[Flower, dict[str, Any]]:
    """Flower's application for ``argv`` (Flower's options), with the section added."""
    flower_command.apply_env_options()
    flower_command.apply_options("flower", list(argv))
    flower_command.extract_settings()
    flower_command.setup_logging()
    settings = dict(flower_settings)
    settings["template_loader"] = FlowerTemplates(settings["template_path"])
    flower_app = Flower(capp=capp, options=flower_options, **settings)
    section = Section(capp, capp.storefront_settings.flower_user_scopes)
    flower_app.add_handlers(
        r".*", section_routes(section, flower_options.url_prefix, protect_monitoring=protect_monitoring)
    )
    return flower_app, settings


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    sys.exit(0)


def serve(capp: Any, argv: Sequence[str], *, protect_monitoring: bool) -> None:
    """Run Flower until SIGTERM or Ctrl-C, as ``celery flower`` does."""
    flower_app, settings = build(capp, argv, protect_monitoring=protect_monitoring)
    atexit.register(flower_app.stop)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    port = flower_app.start_http_server()
    flower_command.print_banner(capp, "ssl_options" in settings, port)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        flower_app.start()
