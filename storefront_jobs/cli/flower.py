"""``storefront-jobs flower``: Flower for the default app, behind basic auth unless told otherwise.

Flower runs in this process on the app that :func:`create_app` builds, so it
reads the lanes with the same ``sep``, ``priority_steps`` and key prefix as
the workers write them; a ``celery flower`` pointed at a bare broker URL
would count kombu's default layout instead.

Lifecycle of a start:

1. Work out where authentication comes from (:func:`auth_sources`): the
   ``FLOWER_BASIC_AUTH`` setting, ``--basic_auth``/``--auth`` passed through
   to Flower, or Flower's own ``FLOWER_BASIC_AUTH``/``FLOWER_AUTH``
   variables. None and no ``--no-auth``: refuse to start. ``--no-auth`` with
   a source: refuse too, since one of the two is a mistake.
2. Build Flower's arguments (:func:`flower_argv`): port, address,
   credentials, and a purge of offline workers unless the caller chose one.
3. Run Flower with the Dead letters section (:mod:`storefront_jobs.flower.server`).
   The credentials go on that in-process argv only, never on a command line
   that ``ps`` shows.

Flower leaves ``/metrics`` and ``/healthcheck`` open even with basic auth:
the command says so at start-up unless ``FLOWER_PROTECT_MONITORING`` puts
them behind the login (docs/flower.md).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping, Sequence

import click

from storefront_jobs.broker.clients import check_tls
from storefront_jobs.errors import ConfigurationError
from storefront_jobs.settings import ENV_PREFIX, Settings, load_settings

#: Seconds after which Flower forgets a worker that went offline. Every
#: deploy renames the pods, so without a purge the workers page (and
#: ``flower_worker_online``) keeps every replaced pod forever; 5 minutes
#: still leaves a crashed worker on the page long enough to be seen.
DEFAULT_PURGE_OFFLINE_WORKERS_S = 300

_AUTH_OPTIONS = ("basic_auth", "auth")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _option_name(arg: str) -> str:
    """``--basic-auth=x`` -> ``basic_auth``: Flower (tornado) accepts both spellings."""
    return arg.lstrip("-").partition("=")[0].replace("-", "_")


def _given(name: str, extra: Sequence[str], environ: Mapping[str, str]) -> bool:
    return any(_option_name(arg) == name for arg in extra) or bool(environ.get("FLOWER_" + name.upper()))


def auth_sources(settings: Settings, extra: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """Every place that turns Flower's authentication on, by the name a user would look for."""
    sources = []
    if settings.flower_basic_auth is not None:
        sources.append(ENV_PREFIX + "FLOWER_BASIC_AUTH")
    for name in _AUTH_OPTIONS:
        if any(_option_name(arg) == name for arg in extra):
            sources.append("--" + name)
        if environ.get("FLOWER_" + name.upper()):
            sources.append("FLOWER_" + name.upper())
    return sources


def check_passthrough(extra: Sequence[str]) -> None:
    """Refuse what Flower would silently drop: unknown names, and values after a space."""
    from flower.options import default_options  # noqa: PLC0415 - defines Flower's options on import

    known = set(default_options._options)  # tornado keeps them with '-' for '_'
    for arg in extra:
        name = _option_name(arg).replace("_", "-")
        if not arg.startswith("--") or name not in known:
            raise click.UsageError(
                f"{arg!r} is not a Flower option; pass Flower's options as --name=value "
                "(see `celery flower --help`)"
            )
        if "=" not in arg and default_options._options[name].type is not bool:
            raise click.UsageError(f"{arg!r} needs a value: write it as {arg}=VALUE")


def flower_argv(
    settings: Settings,
    *,
    port: int,
    address: str,
    extra: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The ``celery flower`` arguments; ``extra`` comes last, so the caller's options win."""
    environ = os.environ if environ is None else environ
    argv = ["flower", f"--port={port}", f"--address={address}"]
    if settings.flower_basic_auth is not None:
        argv.append("--basic_auth=" + settings.flower_basic_auth.get_secret_value())
    if not _given("purge_offline_workers", extra, environ):
        argv.append(f"--purge_offline_workers={DEFAULT_PURGE_OFFLINE_WORKERS_S}")
    return argv + list(extra)


def _warn_no_auth(address: str, port: int) -> None:
    where = "anyone on this machine" if address in _LOOPBACK else f"anyone who can reach {address}:{port}"
    click.echo(
        f"storefront-jobs: warning: --no-auth: Flower runs without authentication; {where} can see "
        "job arguments and shut workers down (its /api stays off unless FLOWER_UNAUTHENTICATED_API=true)",
        err=True,
    )


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Port to listen on (default: STOREFRONT_JOBS_FLOWER_PORT, 5555).",
)
@click.option("--address", help="Address to listen on (default: STOREFRONT_JOBS_FLOWER_ADDRESS, 127.0.0.1).")
@click.option(
    "--no-auth", is_flag=True, help="Start without authentication (refused otherwise); prints a warning."
)
@click.pass_context
def flower(ctx: click.Context, port: int | None, address: str | None, no_auth: bool) -> None:
    """Run Flower for this app, with its Dead letters section.

    Basic auth comes from STOREFRONT_JOBS_FLOWER_BASIC_AUTH; who may replay or
    delete dead letters from STOREFRONT_JOBS_FLOWER_USER_SCOPES. Other options
    go to Flower as --name=value, e.g. --max_tasks=50000.
    """
    from storefront_jobs.application import get_default_app  # noqa: PLC0415 - builds the app from env

    settings = load_settings()
    extra = tuple(ctx.args)
    check_passthrough(extra)
    sources = auth_sources(settings, extra, os.environ)
    if not sources and not no_auth:
        raise ConfigurationError(
            f"Flower would run without authentication: set {ENV_PREFIX}FLOWER_BASIC_AUTH=user:password "
            "(or pass --auth=... for OAuth), or give --no-auth to run it open on purpose"
        )
    if sources and no_auth:
        raise click.UsageError(f"--no-auth contradicts {', '.join(sources)}; remove one of them")
    port = port or settings.flower_port
    address = address or settings.flower_address
    if no_auth:
        _warn_no_auth(address, port)
    if not settings.flower_protect_monitoring:
        click.echo(
            "storefront-jobs: note: Flower serves /metrics and /healthcheck without credentials; "
            f"set {ENV_PREFIX}FLOWER_PROTECT_MONITORING=true to put them behind the login",
            err=True,
        )
    from storefront_jobs.flower.server import serve  # noqa: PLC0415 - imports Flower and tornado

    app = get_default_app()
    check_tls(app.redis, settings)
    try:
        argv = flower_argv(settings, port=port, address=address, extra=extra)[1:]
        serve(app, argv, protect_monitoring=settings.flower_protect_monitoring)
    except OSError as exc:
        # Binding is the one OSError Flower lets out (broker errors it retries
        # and logs itself); say which setting to change instead of a traceback.
        bind_errors = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)
        if not isinstance(exc, socket.gaierror) and exc.errno not in bind_errors:
            raise
        raise ConfigurationError(
            f"Flower cannot listen on {address}:{port} ({exc.strerror}); "
            f"choose another --port/--address ({ENV_PREFIX}FLOWER_PORT, {ENV_PREFIX}FLOWER_ADDRESS)"
        ) from None
