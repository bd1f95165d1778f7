"""One settings object for every process: producers, workers, CLI, admin API.

Read from the environment (prefix ``STOREFRONT_JOBS_``, nested fields joined
with ``__``, e.g. ``STOREFRONT_JOBS_QUEUE_CAPACITY__DEFAULT=20000``) and from
an optional TOML file named by ``STOREFRONT_JOBS_CONFIG_FILE``; the
environment wins over the file. ``WORKER_PRIORITY_FILTER`` is also read
without the prefix, as the runbook spells it.

:func:`load_settings` turns every validation problem into one
:class:`ConfigurationError` that names the environment variable, so a bad
value stops start-up with a message that says what to fix.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from storefront_jobs.errors import ConfigurationError
from storefront_jobs.jobs.priorities import Priority, parse_priorities
from storefront_jobs.jobs.retry import DEFAULT_RETRY_POLICIES, RetryPolicy
from storefront_jobs.scopes import check_scopes
from storefront_jobs.worker.reservation import Reservation, parse_reservation

ENV_PREFIX = "STOREFRONT_JOBS_"
CONFIG_FILE_VAR = ENV_PREFIX + "CONFIG_FILE"

PositiveInt = Annotated[int, Field(ge=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerTls(_Section):
    """TLS to a ``rediss://`` broker: the CA that signs the server's certificate, a client certificate."""

    #: PEM file of the CA(s) the broker's certificate must chain to (default: the system's).
    ca_file: FilePath | None = None
    #: PEM client certificate and its key, for a Redis that asks for one (``tls-auth-clients``).
    cert_file: FilePath | None = None
    key_file: FilePath | None = None
    #: ``required``: the broker's certificate must verify; ``optional``: verified if sent; ``none``: not.
    verify: Literal["required", "optional", "none"] = "required"

    @model_validator(mode="after")
    def _cert_with_key(self) -> BrokerTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("CERT_FILE and KEY_FILE go together: set both or neither")
        return self


class QueueCapacity(_Section):
    """Most jobs a lane may hold waiting; an enqueue beyond it is refused."""

    critical: PositiveInt = 10_000
    high: PositiveInt = 10_000
    default: PositiveInt = 10_000
    low: PositiveInt = 10_000
    bulk: PositiveInt = 10_000

    def for_priority(self, priority: Priority) -> int:
        value: int = getattr(self, priority.label)
        return value


class RetryOverride(_Section):
    """Fields of one priority's retry policy that replace the runbook's values."""

    max_retries: Annotated[int, Field(ge=0)] | None = None
    initial_delay_s: Annotated[float, Field(ge=0)] | None = None
    max_delay_s: Annotated[float, Field(ge=0)] | None = None
    multiplier: Annotated[float, Field(ge=1)] | None = None
    jitter: bool | None = None

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class RetrySettings(_Section):
    critical: RetryOverride = RetryOverride()
    high: RetryOverride = RetryOverride()
    default: RetryOverride = RetryOverride()
    low: RetryOverride = RetryOverride()
    bulk: RetryOverride = RetryOverride()

    @model_validator(mode="after")
    def _bulk_never_retries(self) -> RetrySettings:
        if self.bulk.max_retries:
            raise ValueError("BULK jobs never retry (their first failure goes to the DLQ); leave it at 0")
        return self

    def policy_for(self, priority: Priority) -> RetryPolicy:
        override: RetryOverride = getattr(self, priority.label)
        return DEFAULT_RETRY_POLICIES[priority].with_overrides(override.given())


class DlqSettings(_Section):
    max_entries: PositiveInt = 100_000
    retention_s: PositiveInt = 30 * 24 * 3600


NonNegativeFloat = Annotated[float, Field(ge=0)]


class AgingSettings(_Section):
    """Aging: a job that waited longer than its lane's threshold is promoted one lane up.

    A threshold left unset is ``multiple`` times the lane's target latency;
    0 turns aging off for that lane. CRITICAL has no lane above it; BULK has
    no target latency, so it ages only when given a threshold.
    """

    high_s: NonNegativeFloat | None = None
    default_s: NonNegativeFloat | None = None
    low_s: NonNegativeFloat | None = None
    bulk_s: NonNegativeFloat | None = None
    multiple: Annotated[float, Field(ge=1)] = 10.0
    #: Seconds between two sweeps of the lanes (by whichever worker holds the aging lease).
    sweep_interval_s: Annotated[float, Field(gt=0)] = 5.0

    def threshold_s(self, priority: Priority) -> float | None:
        """Seconds a job of ``priority`` may wait before promotion; ``None``: it is never promoted."""
        if priority is Priority.CRITICAL:
            return None
        given: float | None = getattr(self, f"{priority.label}_s")
        if given is None:
            target = priority.target_latency_s
            given = None if target is None else target * self.multiple
        return given or None


class TenantFairness(_Section):
    """Lanes whose jobs are taken tenant by tenant (round robin, optionally weighted)."""

    critical: bool = False
    high: bool = False
    default: bool = False
    low: bool = False
    bulk: bool = False
    #: Tenant id -> jobs it gets per turn (default 1 for every tenant).
    weights: dict[str, PositiveInt] = {}
    #: Per-tenant depth is exported for this many tenants with the most waiting jobs.
    top_tenants: Annotated[int, Field(ge=0, le=1000)] = 10

    def enabled(self, priority: Priority) -> bool:
        on: bool = getattr(self, priority.label)
        return on

    def lanes(self) -> list[Priority]:
        return [p for p in Priority if self.enabled(p)]


class Settings(BaseSettings):
    """Every setting of storefront-jobs, with its default."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    #: Redis URL of the broker. Unset: ``storefront-jobs dev`` starts an embedded Redis.
    broker_url: str | None = None
    #: Seconds any Redis command of the platform waits for its reply (producers, workers, CLI,
    #: admin API, metrics): a frozen Redis fails an enqueue with BrokerUnavailableError within
    #: this bound. Above one second, the longest blocking wait of a worker's fetch.
    broker_socket_timeout_s: Annotated[float, Field(gt=1.0, le=600.0)] = 5.0
    #: Seconds to open a connection to Redis.
    broker_connect_timeout_s: Annotated[float, Field(gt=0.0, le=600.0)] = 5.0
    #: TLS to a ``rediss://`` broker (BROKER_TLS__CA_FILE, __CERT_FILE, __KEY_FILE, __VERIFY).
    broker_tls: BrokerTls = BrokerTls()
    #: The Sentinel group of the broker's primary, for ``sentinel://`` broker URLs.
    broker_master_name: str | None = None
    #: The password of the Sentinel nodes themselves (the primary's is the URL's).
    broker_sentinel_password: SecretStr | None = None
    #: Replicas that must hold an enqueue, a retry, a replay or a DLQ capture before it counts as
    #: done (Redis's WAIT); 0 takes Redis's acknowledgement, which a failover can lose.
    broker_min_replicas: Annotated[int, Field(ge=0, le=16)] = 0
    #: Seconds a write waits for BROKER_MIN_REPLICAS replicas before it fails with ReplicationError.
    broker_min_replicas_timeout_s: Annotated[float, Field(gt=0.0, le=60.0)] = 1.0
    #: Seconds a job may stay unacknowledged (running, or waiting out a retry
    #: countdown in a worker) before Redis hands it to another worker.
    visibility_timeout_s: PositiveInt = 3600
    #: Largest JSON encoding of a job's arguments (args and kwargs) an enqueue
    #: accepts; a larger job is refused with PayloadError before anything is sent.
    max_payload_bytes: PositiveInt = 1 << 20
    #: Modules that workers and the CLI import so that users' tasks are registered.
    imports: Annotated[list[str], NoDecode] = []
    queue_capacity: QueueCapacity = QueueCapacity()
    retry: RetrySettings = RetrySettings()
    dlq: DlqSettings = DlqSettings()
    #: Token -> scopes for the admin API, as a JSON object.
    admin_tokens: dict[str, list[str]] = {}
    admin_port: Annotated[int, Field(ge=1, le=65535)] = 8080
    #: Where a worker pool serves its metrics (0 turns the endpoint off).
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9808
    #: When set, every metrics endpoint asks for ``Authorization: Bearer <token>``.
    metrics_token: SecretStr | None = None
    #: Celery beat's periodic jobs; ``false`` turns the scheduler off.
    scheduler_enabled: bool = True
    #: Lanes a worker pool consumes when ``--priorities`` is not given.
    worker_priority_filter: Annotated[list[Priority], NoDecode] = Field(
        default_factory=lambda: list(Priority),
        validation_alias=AliasChoices(
            "worker_priority_filter", ENV_PREFIX + "WORKER_PRIORITY_FILTER", "WORKER_PRIORITY_FILTER"
        ),
    )
    #: Processes a multi-lane pool keeps for its urgent lanes, ``CRITICAL,HIGH=1`` (``--reserve``).
    worker_reserve: Annotated[Reservation | None, NoDecode] = None
    #: Let reserved processes take lower lanes' jobs while the reserved lanes are empty.
    worker_lend_reserved: bool = False
    aging: AgingSettings = AgingSettings()
    tenant_fairness: TenantFairness = TenantFairness()
    #: Prefetch multiplier of a pool that consumes a single BULK, LOW or DEFAULT
    #: lane; pools that consume several lanes, or CRITICAL/HIGH, never prefetch.
    bulk_prefetch_multiplier: PositiveInt = 4
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    #: Send Celery task events on every job (Flower turns them on while it runs anyway).
    task_events: bool = False
    #: Where ``storefront-jobs flower`` listens. Loopback by default: an auth
    #: proxy in the same pod reaches it there, and nothing else can (see docs/flower.md).
    flower_port: Annotated[int, Field(ge=1, le=65535)] = 5555
    flower_address: str = "127.0.0.1"
    #: Flower's basic-auth users, ``user:password[,user2:password2]``.
    flower_basic_auth: SecretStr | None = None
    #: Flower user -> DLQ scopes of its "Dead letters" pages, as a JSON object. Empty: every
    #: user of Flower has every scope; otherwise a user not named here has none.
    flower_user_scopes: dict[str, list[str]] = {}
    #: Ask for Flower's login on ``/metrics`` and ``/healthcheck`` too (Flower leaves them open).
    flower_protect_monitoring: bool = False

    @field_validator("imports", mode="before")
    @classmethod
    def _split_imports(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("worker_priority_filter", mode="before")
    @classmethod
    def _parse_filter(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_priorities(value)
        if isinstance(value, list | tuple):
            return sorted({Priority.parse(v) for v in value})
        return value

    @field_validator("worker_reserve", mode="before")
    @classmethod
    def _parse_reserve(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_reservation(value) if value.strip() else None
        return value

    @model_validator(mode="after")
    def _lend_applies(self) -> Settings:
        if self.worker_lend_reserved and self.worker_reserve is not None and not self.worker_reserve.lend:
            object.__setattr__(self, "worker_reserve", dataclasses.replace(self.worker_reserve, lend=True))
        return self

    @model_validator(mode="after")
    def _replicas_answer_in_time(self) -> Settings:
        # WAIT blocks its connection: past the socket timeout the client would give up first.
        if self.broker_min_replicas_timeout_s >= self.broker_socket_timeout_s:
            raise ConfigurationError(
                f"{ENV_PREFIX}BROKER_MIN_REPLICAS_TIMEOUT_S={self.broker_min_replicas_timeout_s}: must be "
                f"below {ENV_PREFIX}BROKER_SOCKET_TIMEOUT_S ({self.broker_socket_timeout_s})"
            )
        return self

    @model_validator(mode="after")
    def _tls_needs_rediss(self) -> Settings:
        if self.broker_tls != BrokerTls() and not (self.broker_url or "").startswith("rediss://"):
            raise ConfigurationError(
                f"{ENV_PREFIX}BROKER_TLS__*: set, but {ENV_PREFIX}BROKER_URL is not a rediss:// URL, "
                "so nothing would use TLS"
            )
        return self

    @model_validator(mode="after")
    def _sentinel_has_a_group(self) -> Settings:
        url = self.broker_url or ""
        if url.startswith("sentinel://") and not self.broker_master_name:
            raise ConfigurationError(
                f"{ENV_PREFIX}BROKER_MASTER_NAME: required with a sentinel:// BROKER_URL "
                "(the name of the primary's group in the Sentinel configuration, e.g. mymaster)"
            )
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("admin_tokens")
    @classmethod
    def _check_tokens(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for token in value:
            if len(token) < 8:
                raise ValueError("every admin token must be at least 8 characters long")
        return value

    @field_validator("flower_user_scopes")
    @classmethod
    def _check_flower_scopes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {user: check_scopes(scopes) for user, scopes in value.items()}

    @field_validator("flower_basic_auth")
    @classmethod
    def _check_flower_users(cls, value: SecretStr | None) -> SecretStr | None:
        # A ConfigurationError, not a ValueError: pydantic would put the value,
        # passwords included, in the error that start-up prints.
        if value is None:
            return None
        try:
            pairs = basic_auth_pairs(value.get_secret_value())
        except ValueError as exc:
            raise ConfigurationError(f"{ENV_PREFIX}FLOWER_BASIC_AUTH: {exc}") from None
        return SecretStr(",".join(f"{user}:{password}" for user, password in pairs))

    def retry_policy(self, priority: Priority) -> RetryPolicy:
        return self.retry.policy_for(priority)

    def capacity(self, priority: Priority) -> int:
        return self.queue_capacity.for_priority(priority)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_VAR)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def basic_auth_pairs(text: str) -> list[tuple[str, str]]:
    """``user:password[,user2:password2]`` as pairs; errors name the entry, never its text.

    Flower splits its ``--basic_auth`` option on commas and compares
    ``user:password`` whole, so a password may hold ``:`` but not ``,``.
    """
    entries = [entry.strip() for entry in text.split(",")]
    pairs = []
    for number, entry in enumerate(entries, start=1):
        user, colon, password = entry.partition(":")
        if not colon or not user or not password:
            raise ValueError(
                f"entry {number} of {len(entries)} is not user:password; accepted: "
                "user:password[,user2:password2] (no ',' inside a password)"
            )
        if len(password) < 8:
            raise ValueError(f"the password of user {user!r} is shorter than 8 characters")
        pairs.append((user, password))
    return pairs


def env_var_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable that feeds a field location, e.g. QUEUE_CAPACITY__DEFAULT."""
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f"={value!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if loc and loc[0] == "worker_priority_filter":
        name = "WORKER_PRIORITY_FILTER (or STOREFRONT_JOBS_WORKER_PRIORITY_FILTER)"
    elif loc and loc[0] == "admin_tokens" and len(loc) > 1:
        # The location's next part is the token itself: never print it.
        return f"{env_var_name(loc[:1])}: the scopes of a token: {message} (a list of scope names)"
    else:
        name = env_var_name(loc)
    return f"{name}{shown}: {message}"


def _unknown_env_vars() -> list[str]:
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | {CONFIG_FILE_VAR}
    return sorted(
        var
        for var in os.environ
        if var.upper().startswith(ENV_PREFIX) and var.upper().split("__", 1)[0] not in known
    )


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, or raise a :class:`ConfigurationError` naming each bad variable."""
    unknown = _unknown_env_vars()
    if unknown:
        raise ConfigurationError(
            "unknown setting(s): " + ", ".join(unknown) + "; see docs/configuration.md for the accepted names"
        )
    config_file = os.environ.get(CONFIG_FILE_VAR)
    if config_file and not Path(config_file).is_file():
        raise ConfigurationError(f"{CONFIG_FILE_VAR}={config_file!r}: no such file")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [_describe(err) for err in exc.errors()]
        raise ConfigurationError("invalid settings:\n  " + "\n  ".join(lines)) from None
    except SettingsError as exc:
        # Raised when a complex value (a JSON object) does not parse at all.
        field = str(exc).split('"')[1] if '"' in str(exc) else "?"
        raise ConfigurationError(
            f"invalid settings:\n  {env_var_name((field,))}: not valid JSON ({exc.__cause__})"
        ) from None
    except ConfigurationError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from None


@functools.cache
def get_settings() -> Settings:
    """The process's settings, loaded once from the environment."""
    return load_settings()
