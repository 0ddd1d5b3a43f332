"""A stand-in for the backend warmgate guards: a Python AI-chat service
(FastAPI on uvicorn, as deployed on Cloud Run) that starts slowly, streams
replies token by token over WebSockets, and answers a few plain HTTP routes.
The tests, the benchmarks and `cargo xtask backend` run it; it is not part
of warmgate.

Run it as uvicorn runs it in production, with the `websockets` library:

    python -m uvicorn app:app --app-dir tests/backend --port 9000 --ws websockets

Environment:

- BACKEND_STARTUP_DELAY: seconds (a float, default 2) that the lifespan
  startup takes, like a model server loading weights. uvicorn binds its
  port only after lifespan startup completes, so until then connections
  are refused, as they are by a Cloud Run instance that is still starting.
- BACKEND_SUBPROTOCOLS: the WebSocket subprotocols it speaks, a comma list
  (default `chat.v2`). Of those a client offers, the first one in this
  list is selected; when none is, the handshake selects none.

WebSocket, on `/ws` and any path under `/ws/`: each text message that is a
JSON object with an "op" is a command; any other message, text or binary,
is echoed back unchanged.

- {"op": "headers"}: one JSON frame {"path", "query", "subprotocol",
  "headers"} describing the handshake request as this backend saw it
  (header names lowercased; a repeated header's values joined by ", ").
- {"op": "stream", "text": "hello there world", "delay_ms": 20}: one frame
  {"token": "hello", "index": 0} per whitespace-separated token, each after
  delay_ms (default 0), then {"done": true, "tokens": N}.
- {"op": "close", "code": 4001, "reason": "bye"}: closes with that code
  and reason (defaults 1000 and "").
- {"op": "log"}: {"received": [...]}, every text message this connection
  received before this one, in order.

HTTP: GET /healthz, GET /api/hello, GET /api/headers, POST /api/echo (the
body back with its content-type), GET /api/sse?n=5&interval_ms=100 (n
events `data: <i>`, each sent as it is produced), GET /api/status/{code}.
"""

import asyncio
import json
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Path, Request, Response, WebSocket
from fastapi.responses import StreamingResponse
from starlette.datastructures import Headers

STARTUP_DELAY = float(os.environ.get("BACKEND_STARTUP_DELAY", "2"))
SUBPROTOCOLS = [
    name.strip()
    for name in os.environ.get("BACKEND_SUBPROTOCOLS", "chat.v2").split(",")
    if name.strip()
]


@asynccontextmanager
async def lifespan(_app: FastAPI):
    # uvicorn opens its listening socket only once this yields.
    await asyncio.sleep(STARTUP_DELAY)
    yield


app = FastAPI(lifespan=lifespan)


def headers_dict(headers: Headers) -> dict[str, str]:
    """Header names lowercased; a repeated header's values joined by ", "."""
    joined: dict[str, str] = {}
    for raw_name, raw_value in headers.raw:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


# === HTTP ===


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@app.get("/api/hello")
async def hello() -> dict:
    return {"hello": "world"}


@app.get("/api/headers")
async def request_headers(request: Request) -> dict:
    return {
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "headers": headers_dict(request.headers),
    }


@app.post("/api/echo")
async def echo(request: Request) -> Response:
    content_type = request.headers.get("content-type")
    headers = {"content-type": content_type} if content_type else {}
    return Response(content=await request.body(), headers=headers)


@app.get("/api/sse")
async def sse(n: int = 5, interval_ms: int = 100) -> StreamingResponse:
    async def events():
        for i in range(n):
            await asyncio.sleep(interval_ms / 1000)
            # Each yield is written to the socket at once: uvicorn neither
            # buffers nor compresses a streaming body.
            yield f"data: {i}\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


@app.get("/api/status/{code}")
async def status(code: int = Path(ge=200, le=599)) -> Response:
    return Response(status_code=code)


# === WebSocket ===


async def chat(websocket: WebSocket) -> None:
    offered = websocket.scope.get("subprotocols", [])
    selected = next((name for name in offered if name in SUBPROTOCOLS), None)
    await websocket.accept(subprotocol=selected)
    received: list[str] = []
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await websocket.send_bytes(message["bytes"])
            continue
        text = message["text"]
        try:
            command = json.loads(text)
        except ValueError:
            command = None
        op = command.get("op") if isinstance(command, dict) else None
        if op == "headers":
            await websocket.send_json(
                {
                    "path": websocket.url.path,
                    "query": websocket.url.query,
                    "subprotocol": selected,
                    "headers": headers_dict(websocket.headers),
                }
            )
        elif op == "stream":
            tokens = str(command.get("text", "")).split()
            delay = float(command.get("delay_ms", 0)) / 1000
            for index, token in enumerate(tokens):
                if delay:
                    await asyncio.sleep(delay)
                await websocket.send_json({"token": token, "index": index})
            await websocket.send_json({"done": True, "tokens": len(tokens)})
        elif op == "close":
            code = int(command.get("code", 1000))
            await websocket.close(code=code, reason=str(command.get("reason", "")))
            return
        elif op == "log":
            await websocket.send_json({"received": received})
        else:
            await websocket.send_text(text)
        received.append(text)


app.add_api_websocket_route("/ws", chat)
app.add_api_websocket_route("/ws/{rest:path}", chat)
