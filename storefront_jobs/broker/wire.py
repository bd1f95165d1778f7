"""A task message as kombu's Redis transport stores it in a lane's list, built without kombu's publish.

kombu's ``Producer.publish`` serializes the body, copies the properties,
checks what to declare and base64-encodes the body into a JSON envelope that
it ``LPUSH``es. Celery sends a storefront lane (a direct queue) by the default
exchange, whose routing key is the queue's name, so the lean enqueue
(:mod:`storefront_jobs.jobs.publish`) builds that envelope here directly and
pushes it with :mod:`storefront_jobs.broker.lanepush`.

The envelope is kombu's wire format, read by every Celery worker on this
Redis, storefront's or plain: ``tests/unit/broker/test_wire_contract.py``
builds one message both ways and fails, naming the field, if a kombu version
stores anything differently.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from kombu.utils.json import dumps as kombu_dumps

#: What kombu records for a JSON body: Celery's ``task_serializer = "json"``.
CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "utf-8"
#: kombu's Redis channel encodes every body so (``Channel.body_encoding``).
BODY_ENCODING = "base64"
#: Celery publishes task messages persistent (AMQP delivery mode 2).
PERSISTENT = 2


def lane_message(
    body_json: str, headers: dict[str, Any], properties: dict[str, Any], *, lane: str
) -> dict[str, Any]:
    """The dict kombu would push onto ``lane`` for a body of JSON text, Celery's headers and properties.

    ``properties`` (Celery's ``correlation_id`` and ``reply_to``) is filled in
    place: the envelope owns it from here on.
    """
    properties["delivery_mode"] = PERSISTENT
    # Celery sends a direct lane by the default exchange (routing key = queue name), as here.
    properties["delivery_info"] = {"exchange": "", "routing_key": lane}
    properties["priority"] = 0
    properties["body_encoding"] = BODY_ENCODING
    properties["delivery_tag"] = str(uuid.uuid4())
    return {
        "body": base64.b64encode(body_json.encode(CONTENT_ENCODING)).decode("ascii"),
        "content-encoding": CONTENT_ENCODING,
        "content-type": CONTENT_TYPE,
        "headers": headers,
        "properties": properties,
    }


def to_json(value: Any) -> str:
    """``value`` as JSON text, exactly as kombu's serializer writes it.

    The standard library's encoder writes plain JSON values as kombu's does
    (kombu's adds types: dates, UUIDs, decimals) without building an encoder
    per call; a value it cannot write takes kombu's, which raises for what
    neither can write.
    """
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return str(kombu_dumps(value))
