"""Peer server for the benchmarks: FastAPI + sse-starlette on uvicorn.

Same routes as the demo's publish/events API. Each subscriber gets an asyncio queue that the
publish handler fans out to (the usual pattern with sse-starlette); a subscriber that falls
1,024 events behind loses events, as a tokio broadcast receiver would.

    python app.py --listen 127.0.0.1:8000 [--heartbeat 15s] [--publish-token TOKEN]
"""

import argparse
import asyncio
import json
import re

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

CHANNEL = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
QUEUE_SIZE = 1024


def parse_duration(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration {text}")
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n / 1000 if unit == "ms" else n * 60 if unit == "m" else n


parser = argparse.ArgumentParser()
parser.add_argument("--listen", default="127.0.0.1:8000")
parser.add_argument("--heartbeat", type=parse_duration, default=15)
parser.add_argument("--publish-token")
parser.add_argument("--plain", action="store_true")
parser.add_argument("--history")
args = parser.parse_args()

app = FastAPI()
subscribers: dict[str, set[asyncio.Queue]] = {}
next_id: dict[str, int] = {}


@app.get("/healthz")
async def healthz():
    return "ok"


@app.get("/events/{channel}")
async def events(channel: str, request: Request):
    if not CHANNEL.match(channel):
        return JSONResponse({"error": "bad channel"}, status_code=400)
    queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
    subscribers.setdefault(channel, set()).add(queue)

    async def stream():
        try:
            while True:
                yield await queue.get()
        finally:
            subscribers.get(channel, set()).discard(queue)

    return EventSourceResponse(stream(), ping=args.heartbeat)


@app.post("/api/channels/{channel}/events", status_code=201)
async def publish(channel: str, request: Request):
    if args.publish_token and request.headers.get("authorization") != f"Bearer {args.publish_token}":
        return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
    if not CHANNEL.match(channel):
        return JSONResponse({"error": "channel names match [A-Za-z0-9_.-]{1,64}"}, status_code=400)
    try:
        body = json.loads(await request.body())
    except ValueError as e:
        return JSONResponse({"error": f"body is not JSON: {e}"}, status_code=400)
    event = body.get("event")
    if event is not None and (not isinstance(event, str) or "\r" in event or "\n" in event):
        return JSONResponse({"error": "event must be a string without CR or LF"}, status_code=400)
    if "data" not in body:
        return JSONResponse({"error": "data is required"}, status_code=400)
    data = body["data"]
    if not isinstance(data, str):
        data = json.dumps(data, separators=(",", ":"))
    next_id[channel] = next_id.get(channel, 0) + 1
    message = {"id": str(next_id[channel]), "data": data}
    if event:
        message["event"] = event
    for queue in list(subscribers.get(channel, ())):
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            pass
    return JSONResponse({"id": message["id"]}, status_code=201)


if __name__ == "__main__":
    host, port = args.listen.rsplit(":", 1)
    uvicorn.run(app, host=host, port=int(port), log_level="warning", backlog=4096)
