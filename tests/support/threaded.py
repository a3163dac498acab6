"""The app served by a real uvicorn server in a thread of the test process: a live server
on a port (for a browser) without a process of its own, so it starts in a second instead of
paying the imports again (tests/support/live.py's `propintel serve` takes 10-20 s on a loaded
machine). The thread runs its own event loop; a synchronous test (Playwright's sync API holds
a loop in the test's thread) drives it over HTTP."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Iterator

import uvicorn

from app.asgi import create_app
from app.settings import Settings
from tests.support.live import free_port


@contextlib.contextmanager
def serving_in_thread(settings: Settings, *, startup_s: float = 60) -> Iterator[str]:
    """Yields the base URL once the app's lifespan has started; stops it on the way out."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_s
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started (see its log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {startup_s:.0f} s")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        # The lifespan froze the heap (app/asgi.py): let the collector see it again.
        gc.unfreeze()
