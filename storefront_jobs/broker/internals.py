"""Every private or undocumented name of kombu, Celery and billiard that storefront-jobs relies on.

(And the few of redis-py, below kombu's poll loop, of tornado, under Flower's options, and of
Flower itself, which has no plug-in interface for the Dead letters section.)

kombu's Redis transport has no extension API: the reliable fetch, the
capacity check inside the publish and the doorbells are overrides of its
private methods, and a few worker features read Celery's own bookkeeping. A
minor release may rename any of them without notice, so each one is listed
here, with the module that relies on it and why, and
``tests/unit/broker/test_private_names.py`` checks every entry against the
installed versions (:func:`storefront_jobs.broker.contract.problems`): the
name is there, of the same kind, a callable with the same parameters. An
upgrade that removes or changes one fails that test with the name, the
installed version and what breaks (docs/architecture.md, "Upgrading kombu").

Outside this package, code reaches these names through
:mod:`storefront_jobs.broker.accessors`; the overrides of public-looking hooks
of Celery classes (a ``Request``, a ``Consumer``, the beat scheduler) stay
with their features and are listed here too.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from storefront_jobs.broker import keys

#: method: a function of the class (its parameters checked); attribute: a class or instance
#: attribute; property: a property of the class; kwarg: a keyword that ``method`` reads from
#: ``**kwargs``; module attribute: a name of a module (``owner`` is the module).
Kind = Literal["method", "attribute", "property", "kwarg", "module attribute"]


@dataclasses.dataclass(frozen=True)
class Internal:
    """One name the platform relies on."""

    #: ``package.module:Class`` (``package.module`` for a module attribute).
    owner: str
    name: str
    kind: Kind
    #: The modules that rely on it, relative to the repository root.
    used_in: tuple[str, ...]
    why: str
    #: A method's parameters as ``inspect.signature`` shows them, names only: ``(self, queue, **kwargs)``.
    params: str = ""
    #: Keywords a call passes to the method: each must still be one of its parameters.
    accepts: tuple[str, ...] = ()
    #: A kwarg's reader: the method whose ``**kwargs`` it is read from.
    method: str = ""
    #: A wire-format value storefront-jobs mirrors (``broker/keys.py``); None: not compared.
    value: object = None

    @property
    def qualified_name(self) -> str:
        """``kombu.transport.redis.Channel._put``; a kwarg as ``...Channel._put(_publish_batch=)``."""
        owner = self.owner.replace(":", ".")
        if self.kind == "kwarg":
            return f"{owner}.{self.method}({self.name}=)"
        return f"{owner}.{self.name}"

    @property
    def distribution(self) -> str:
        """The installed distribution the name belongs to (its version goes into every message)."""
        return self.owner.split(".", 1)[0].split(":", 1)[0]


_TRANSPORT = "storefront_jobs/broker/transport.py"
_FETCH = "storefront_jobs/broker/fetch.py"
_QOS = "storefront_jobs/broker/qos.py"
_KOMBU_QOS = "kombu.transport.redis:QoS"
_ACCESSORS = "storefront_jobs/broker/accessors.py"
_CHANNEL = "kombu.transport.redis:Channel"
_SENTINEL = "kombu.transport.redis:SentinelChannel"
_APPLICATION = "storefront_jobs/application.py"
_VIRTUAL = "kombu.transport.virtual.base:Channel"
_REQUEST = "celery.worker.request:Request"
_CONSUMER = "celery.worker.consumer.consumer:Consumer"
_STACK = "celery.utils.threads:LocalStack"
_STATE = "celery.worker.state"
_AMQP = "celery.app.amqp:AMQP"
_REQUEST_PY = "storefront_jobs/worker/request.py"
_UNDECODABLE = "storefront_jobs/deadletter/undecodable.py"
_PAUSING = "storefront_jobs/worker/pausing.py"
_MESSAGES = "storefront_jobs/deadletter/messages.py"
_FLOWER_SERVER = "storefront_jobs/flower/server.py"
_FLOWER_VIEWS = "storefront_jobs/flower/handler.py"
_KEPT = "overridden: what Celery would drop is kept in the DLQ first"


def _entry(
    kind: Kind, owner: str, name: str, used_in: str | tuple[str, ...], why: str, **more: Any
) -> Internal:
    used = (used_in,) if isinstance(used_in, str) else used_in
    if kind == "attribute" and ":" not in owner:
        kind = "module attribute"
    return Internal(owner, name, kind, used, why, **more)


def _method(owner: str, name: str, params: str, used_in: str | tuple[str, ...], why: str) -> Internal:
    return _entry("method", owner, name, used_in, why, params=params)


def _attribute(
    owner: str, name: str, used_in: str | tuple[str, ...], why: str, value: object = None
) -> Internal:
    return _entry("attribute", owner, name, used_in, why, value=value)


def _property(owner: str, name: str, used_in: str | tuple[str, ...], why: str) -> Internal:
    return _entry("property", owner, name, used_in, why)


REGISTRY: tuple[Internal, ...] = (
    # --- kombu: the publish (broker/transport.py) --------------------------------------------------
    _method(_CHANNEL, "_put", "(self, queue, message, **kwargs)", _TRANSPORT,
            "overridden: the capacity check and the doorbell inside the publish"),
    _entry("kwarg", _CHANNEL, "_publish_batch", (_TRANSPORT, _ACCESSORS),
           "a batched publish collects its LPUSH instead of running it: left to kombu by the transport, "
           "collected for the DLQ replay's MOVE script (collect_publish)", method="_put"),
    _method(_VIRTUAL, "basic_publish", "(self, message, exchange, routing_key, **kwargs)", _ACCESSORS,
            "passes its keywords (_publish_batch) on to _put"),
    _property(_CHANNEL, "supports_batch_publish", _TRANSPORT,
              "overridden to False: a refusal could not reach the caller of a batched publish"),
    _method(_CHANNEL, "_connparams", "(self, asynchronous)", _TRANSPORT,
            "overridden: a closed connection raises a connection error, which kombu recovers from"),
    _method(_CHANNEL, "_create_client", "(self, asynchronous)", _TRANSPORT,
            "one redis-py client per connection pool for the publish"),
    _property(_CHANNEL, "pool", _TRANSPORT, "the connection pool the publish client is built on"),
    _method(_CHANNEL, "_size", "(self, queue)", _TRANSPORT,
            "overridden: a lane's size counts its tenant lists too (a fair share per tenant)"),
    _method(_CHANNEL, "_queue_bind", "(self, exchange, routing_key, pattern, queue)", _TRANSPORT,
            "overridden: the binding recorded by an allow-oom script, so a worker starts on a full Redis"),
    _attribute(_CHANNEL, "_fanout_queues", _TRANSPORT, "a fanout binding is marked as kombu marks it"),
    _attribute(_CHANNEL, "_expires", _TRANSPORT, "queues that expire (control replies): their tables have "
               "deadlines"),
    _property(_CHANNEL, "_script_binding_deadlines", _TRANSPORT, "the sorted set of binding deadlines"),
    _method(_CHANNEL, "_binding_ttl", "(self, queue)", _TRANSPORT, "how long a binding table lives"),
    _attribute(_CHANNEL, "keyprefix_binding_permanent", _TRANSPORT, "the set of bindings that never expire"),
    _method(_CHANNEL, "_purge", "(self, queue)", _TRANSPORT,
            "overridden: purging a lane deletes its tenant lists and their counts too"),
    _method(_CHANNEL, "_q_for_pri", "(self, queue, pri)", (_TRANSPORT, _FETCH),
            "the list of a lane for a message priority"),
    _method(_VIRTUAL, "_get_message_priority", "(self, message, reverse)", (_TRANSPORT, _FETCH),
            "the message priority that picks the list (of a publish, of a restore)"),
    _attribute("kombu.connection:Connection", "resolve_aliases", _TRANSPORT,
               "our transports written as redis://, rediss:// and sentinel:// in URIs (Flower reads "
               "the scheme)"),
    # --- kombu: Sentinel (broker/transport.py, application.py) -------------------------------------
    _attribute(_SENTINEL, "from_transport_options", (_TRANSPORT, _APPLICATION),
               "reads master_name and sentinel_kwargs from the transport options"),
    _attribute(_SENTINEL, "connection_class", _TRANSPORT,
               "Sentinel-managed connections: a new connection asks the nodes for the primary"),
    _attribute("kombu.transport.redis:SentinelTransport", "default_port", _TRANSPORT,
               "Sentinel's port for a sentinel:// URL without one"),
    # --- kombu: the reliable fetch (broker/fetch.py) -----------------------------------------------
    _method(_CHANNEL, "_brpop_start", "(self, timeout)", _FETCH,
            "overridden: sends the fetch script or a doorbell wait"),
    _method(_CHANNEL, "_brpop_read", "(self, **options)", _FETCH,
            "overridden: reads the reply of whichever command was sent"),
    _method(_CHANNEL, "_flush_brpop_reauth", "(self)", _FETCH, "kombu's re-authentication after each read"),
    _method(_CHANNEL, "_do_restore_message", "(self, payload, exchange, routing_key, pipe, leftmost)", _FETCH,
            "overridden: a restored message rings its lane's doorbell"),
    _method(_VIRTUAL, "_lookup", "(self, exchange, routing_key, default)", _FETCH,
            "the queues a restored message goes back to"),
    _attribute(_CHANNEL, "_queue_cycle", _FETCH, "the queue order of each poll (sorted: highest lane first)"),
    _attribute(_CHANNEL, "_in_poll", _FETCH, "set while a command is outstanding; kombu's poller reads it"),
    _attribute(_CHANNEL, "_brpop_sent_at", _FETCH, "when it was sent; kombu's half-open connection check"),
    _attribute(_CHANNEL, "brpop_timeout", _FETCH, "the doorbell wait: an idle worker looks once a second"),
    _property(_CHANNEL, "active_queues", _FETCH, "the queues the poll cycles over"),
    _property(_CHANNEL, "client", _FETCH, "the poll connection the fetch is sent and read on"),
    _attribute(_CHANNEL, "connection_errors", _FETCH, "errors after which the poll connection is dropped"),
    _attribute(_CHANNEL, "priority_steps", (_FETCH, _TRANSPORT), "kombu's sub-lists",
               value=keys.KOMBU_PRIORITY_STEPS),
    _attribute(_CHANNEL, "sep", _FETCH, "the sub-lists' names", value=keys.KOMBU_SEP),
    _attribute(_CHANNEL, "unacked_key", _FETCH, "the fetch records messages in it", value=keys.KOMBU_UNACKED),
    _attribute(_CHANNEL, "unacked_index_key", _FETCH, "the fetch scores messages in it",
               value=keys.KOMBU_UNACKED_INDEX),
    _attribute(_CHANNEL, "global_keyprefix", _FETCH, "refused: the scripts name their keys directly"),
    _attribute(_VIRTUAL, "Message", _FETCH, "a message is built to tell a kombu message from garbage"),
    _method(_VIRTUAL, "basic_consume", "(self, queue, no_ack, callback, consumer_tag, **kwargs)", _FETCH,
            "overridden: remembers the consumers without acks"),
    _method(_CHANNEL, "basic_cancel", "(self, consumer_tag)", _FETCH, "overridden: forgets them"),
    _attribute(_CHANNEL, "QoS", _FETCH, "replaced by a QoS that skips what the fetch script recorded"),
    _method(_KOMBU_QOS, "append", "(self, message, delivery_tag)", _QOS,
            "overridden: a message the fetch script recorded is not recorded again; others on Redis's clock"),
    _method(_KOMBU_QOS, "ack", "(self, delivery_tag)", _QOS,
            "overridden: one allow-oom script, which also wakes a worker whose reservation closed lower "
            "lanes"),
    _method(_KOMBU_QOS, "reject", "(self, delivery_tag, requeue)", _QOS,
            "overridden: without requeue, the same ack"),
    _method(_KOMBU_QOS, "restore_visible", "(self, start, num, interval)", _QOS,
            "overridden: the restore sweep's deadline on Redis's clock, not the sweeping worker's"),
    _attribute(_KOMBU_QOS, "_vrestore_count", _QOS, "the sweep's throttle, counted as kombu counts it"),
    _method(_KOMBU_QOS, "restore_by_tag", "(self, tag, client, leftmost)", _QOS,
            "overridden: one allow-oom script gives a held message back (kombu's reject and "
            "restore_unacked call it)"),
    _property(_KOMBU_QOS, "unacked_mutex_key", _QOS,
              "the sweep's lock, the key plain kombu workers take too (our lease takes it)"),
    _property(_KOMBU_QOS, "unacked_mutex_expire", _QOS, "the lock's lifetime"),
    _property(_KOMBU_QOS, "visibility_timeout", _QOS, "the sweep's deadline"),
    _property(_KOMBU_QOS, "unacked_key", _QOS, "where a message is recorded"),
    _property(_KOMBU_QOS, "unacked_index_key", _QOS, "where its fetch time is scored"),
    _method(_CHANNEL, "conn_or_acquire", "(self, client)", _QOS, "a client for the record and the sweep"),
    _attribute("kombu.transport.virtual.base:Message", "_raw", _QOS, "the payload recorded for a restore"),
    _method("kombu.transport.virtual.base:QoS", "ack", "(self, delivery_tag)", _QOS,
            "the in-memory bookkeeping of an acknowledgement"),
    _method("kombu.transport.virtual.base:QoS", "append", "(self, message, delivery_tag)", _QOS,
            "the in-memory bookkeeping of a recorded message"),
    _method("kombu.transport.virtual.base:Transport", "_deliver", "(self, message, queue)", _FETCH,
            "hands a fetched message to its consumer"),
    _attribute("redis.client:Redis", "connection", _FETCH, "the poll connection kombu's poller sets"),
    _method("redis.connection:AbstractConnection", "send_command", "(self, *args, **kwargs)", _FETCH,
            "sends the fetch script or the doorbell wait without waiting for the reply"),
    _method("redis.client:Redis", "parse_response", "(self, connection, command_name, **options)", _FETCH,
            "reads the reply of a command sent without waiting for it"),
    # --- Celery and billiard: the worker -----------------------------------------------------------
    _property(_REQUEST, "_context", _ACCESSORS, "the task request of a worker-side one (request_context)"),
    _attribute("celery.app.task:Task", "request_stack", _ACCESSORS,
               "a job's request pushed while the main process handles its failure (request_pushed)"),
    _method(_STACK, "push", "(self, obj)", _ACCESSORS, "request_pushed"),
    _method(_STACK, "pop", "(self)", _ACCESSORS, "request_pushed"),
    _attribute(_STATE, "active_requests", _ACCESSORS, "jobs running now (active_request_count)"),
    _attribute(_STATE, "reserved_requests", _ACCESSORS,
               "jobs holding a process, by lane, for reserved processes (reserved_request_lanes)"),
    _attribute(_STATE, "total_count", _ACCESSORS, "jobs this pool finished (processed_count)"),
    _attribute("billiard.einfo:ExceptionInfo", "exception", _ACCESSORS, "a failure's error (raised_error)"),
    _attribute("billiard.einfo:ExceptionWithTraceback", "exc", _ACCESSORS,
               "the error unwrapped from billiard's pickling wrapper (raised_error)"),
    _method(_REQUEST, "on_failure", "(self, exc_info, send_failed_event, return_ok)", _REQUEST_PY,
            "overridden: the DLQ record of a lost worker is written before Celery acks"),
    _method(_REQUEST, "on_timeout", "(self, soft, timeout)", _REQUEST_PY,
            "overridden: the job's request pushed for task_failure"),
    _method(_CONSUMER, "on_decode_error", "(self, message, exc)", _UNDECODABLE, _KEPT),
    _method(_CONSUMER, "on_invalid_task", "(self, body, message, exc)", _UNDECODABLE, _KEPT),
    _method(_CONSUMER, "on_unknown_task", "(self, body, message, exc)", _UNDECODABLE,
            "overridden: a job no worker knows is kept in the DLQ, replayable"),
    _method(_CONSUMER, "on_unknown_message", "(self, body, message)", _UNDECODABLE, _KEPT),
    _method(_CONSUMER, "call_soon", "(self, p, *args, **kwargs)", _PAUSING,
            "pausing changes the consumer from its own event loop"),
    _method(_CONSUMER, "add_task_queue", "(self, queue, exchange, exchange_type, routing_key, **options)",
            _PAUSING, "a resumed lane is consumed again"),
    _method(_CONSUMER, "cancel_task_queue", "(self, queue)", _PAUSING, "a paused lane is no longer consumed"),
    _property("celery.app.amqp:Queues", "consume_from", ("storefront_jobs/worker/heartbeat.py", _PAUSING),
              "the lanes a pool consumes now"),
    _method("celery.beat:Scheduler", "tick", "(self, event_t, min, heappop, heappush)",
            "storefront_jobs/scheduler.py", "overridden: each tick recorded for /q/health"),
    # --- Celery: a replay's message, built as send_task builds it (deadletter/messages.py) ---------
    _property(_AMQP, "create_task_message", _MESSAGES, "the task message builder of the app's protocol"),
    _entry("method", _AMQP, "as_task_v2", _MESSAGES, "what create_task_message is under protocol 2",
           accepts=("task_id", "name", "args", "kwargs", "ignore_result", "origin", "argsrepr",
                    "kwargsrepr")),
    _attribute(_AMQP, "argsrepr_maxsize", _MESSAGES, "the length of the arguments' repr"),
    # --- other libraries ---------------------------------------------------------------------------
    _attribute("tornado.options:OptionParser", "_options", "storefront_jobs/cli/flower.py",
               "Flower's option names and types, to refuse an option Flower would drop"),
    # --- Flower: its command's steps, run again to add the Dead letters section (flower/server.py) -
    *(_attribute("flower.command", step, _FLOWER_SERVER, "a step of `celery flower`, run as it runs it")
      for step in ("apply_env_options", "apply_options", "extract_settings", "setup_logging",
                   "print_banner")),
    _attribute("flower.urls", "settings", _FLOWER_SERVER,
               "the Tornado settings Flower starts with (template_path, login_url, xsrf_cookies)"),
    _method("flower.app:Flower", "__init__", "(self, options, capp, events, io_loop, **kwargs)",
            _FLOWER_SERVER, "built with the app and Flower's settings plus our template_loader"),
    _method("flower.app:Flower", "start_http_server", "(self)", _FLOWER_SERVER, "binds Flower's port"),
    _method("flower.app:Flower", "start", "(self)", _FLOWER_SERVER, "runs Flower's event loop"),
    _method("flower.app:Flower", "stop", "(self)", _FLOWER_SERVER, "stops it at exit"),
    _method("flower.views:BaseHandler", "check_xsrf_cookie", "(self)", _FLOWER_VIEWS,
            "overridden: Tornado's token is checked even where Flower skips it (basic auth)"),
    _method("flower.views:BaseHandler", "get_current_user", "(self)", _FLOWER_VIEWS,
            "Flower's login; True for basic auth (the user is read from the header), else the e-mail"),
    _method("flower.views:BaseHandler", "render", "(self, *args, **kwargs)", _FLOWER_VIEWS,
            "adds Flower's template functions; ours must not reuse their names"),
    _method("flower.views.monitor:Metrics", "get", "(self)", _FLOWER_SERVER,
            "wrapped behind the login by FLOWER_PROTECT_MONITORING"),
    _method("flower.views.monitor:Healthcheck", "get", "(self)", _FLOWER_SERVER,
            "wrapped behind the login by FLOWER_PROTECT_MONITORING"),
)  # fmt: skip
