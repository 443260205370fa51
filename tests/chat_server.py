"""A chat-completions endpoint on a thread for the evalplus runner's tests: every request recorded,
each answered by the subclass's `reply` (canned answers, or forwarding to a real llama-server)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Self

from aiohttp import web


class ThreadedChatServer:
    """aiohttp app on a thread: POST /{model}/v1/chat/completions, recorded as {model, body, benchmark}."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def reply(self, body: dict[str, Any]) -> web.Response:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def _run(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            self.requests.append({"model": request.match_info["model"], "body": body,
                                  "benchmark": request.headers.get("X-Harness-Benchmark")})
            return await self.reply(body)

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/{model}/v1/chat/completions", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
            self._ready.set()
            while True:
                await asyncio.sleep(3600)

        asyncio.new_event_loop().run_until_complete(main())
