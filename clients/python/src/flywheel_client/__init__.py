"""Post chat feedback events to a Feedback Flywheel API, from a chat backend.

    from flywheel_client import Client

    app = {"name": "chat-api", "version": "1.4.0"}
    with Client("https://flywheel.example.com", key, app=app) as client:
        client.generation(user_id=..., conversation_id=..., response_id=..., parent_id=...,
                          prompt=messages, response=text, model="chat-small")

``Client`` sends from a background thread, ``AsyncClient`` from an asyncio task; both batch,
retry and report dropped events to ``on_error`` by the same rules (``_protocol`` states them).
Runtime dependency: httpx only.
"""

from flywheel_client._async_client import AsyncClient
from flywheel_client._base import ErrorCallback
from flywheel_client._client import Client
from flywheel_client._events import (
    App,
    Choice,
    Consent,
    PreparedEvent,
    Scalar,
    new_event_id,
    prepare,
    utc_timestamp,
)
from flywheel_client._results import DroppedEvent, DropReason, EventError, SendResult, Stats
from flywheel_client._version import __version__

__all__ = [
    "App",
    "AsyncClient",
    "Choice",
    "Client",
    "Consent",
    "DropReason",
    "DroppedEvent",
    "ErrorCallback",
    "EventError",
    "PreparedEvent",
    "Scalar",
    "SendResult",
    "Stats",
    "__version__",
    "new_event_id",
    "prepare",
    "utc_timestamp",
]
