"""The `fake_hub` fixture: the hub-shaped HTTP server of `fake_hub.py` on an ephemeral 127.0.0.1 port."""

from __future__ import annotations

import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_hub import HubState, _Handler  # noqa: E402


@pytest.fixture
def fake_hub():
    """Start the server on an ephemeral 127.0.0.1 port; yields (endpoint URL, HubState)."""
    state = HubState()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
