#!/usr/bin/env python3
"""Checks a running demo with tools that share no code with it.

Usage: check.py BASE_URL   (the demo runs with --plain and a short --max-stream-lifetime, so
that every stream ends by itself)

1. /openapi.json is a valid OpenAPI 3.2 document (openapi-spec-validator), and every schema
   of the stream's itemSchema is a valid JSON Schema 2020-12 (jsonschema's metaschema check).
2. Live events of the dashboard's and the hub's channels, and the sse-reset of a stale resume
   point, each match itemSchema, and JSON data matches the contentSchema of its event's entry.
3. /metrics parses with prometheus_client's own parsers (Prometheus text and OpenMetrics), and
   its counters agree with what this script did.
4. Schemathesis tests every operation of the document against the live demo; it reads
   itemSchema and checks each event of every text/event-stream response.

Prints one line per check; exits non-zero at the first failure.
"""

import http.client
import json
import os
import subprocess
import sys
import urllib.request
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV32SpecValidator
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

BASE = sys.argv[1].rstrip("/")


def ok(message):
    print(f"ok: {message}", flush=True)


def fail(message):
    print(f"FAILED: {message}", flush=True)
    sys.exit(1)


def get(path, headers=None):
    request = urllib.request.Request(BASE + path, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers.get("content-type", ""), response.read().decode()


def read_stream(path, last_event_id=None, limit_s=10):
    """The events of a stream, parsed as WHATWG says (and as Schemathesis reports them: an
    object of `event`, `data`, `id` and `retry`, for each block that carries data)."""
    url = urlsplit(BASE + path)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=limit_s)
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    connection.request("GET", url.path + (f"?{url.query}" if url.query else ""), headers=headers)
    response = connection.getresponse()
    if response.status != 200:
        fail(f"GET {path}: {response.status}")
    events, block, data, last_id = [], {}, None, ""
    # The demo ends each stream after its lifetime, so reading to the end is bounded.
    for raw in response.read().decode().splitlines():
        if raw == "":
            if data is not None:
                event = {"data": "\n".join(data), **block}
                if last_id:
                    event["id"] = last_id
                events.append(event)
            block, data = {}, None
            continue
        if raw.startswith(":"):
            continue
        field, _, value = raw.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data = (data or []) + [value]
        elif field == "event":
            block["event"] = value
        elif field == "id" and "\0" not in value:
            last_id = value
        elif field == "retry" and value.isdigit():
            block["retry"] = int(value)
    connection.close()
    return events


# 1. The document.
content_type, body = get("/openapi.json")
if not content_type.startswith("application/json"):
    fail(f"/openapi.json is {content_type}")
spec = json.loads(body)
if not spec.get("openapi", "").startswith("3.2"):
    fail(f"not an OpenAPI 3.2 document: {spec.get('openapi')}")
errors = list(OpenAPIV32SpecValidator(spec).iter_errors())
if errors:
    fail(f"openapi-spec-validator: {errors[0]}")
ok("openapi-spec-validator: a valid OpenAPI 3.2 document")

operation = spec["paths"]["/events/{channel}"]["get"]
item_schema = operation["responses"]["200"]["content"]["text/event-stream"]["itemSchema"]
Draft202012Validator.check_schema(item_schema)
entries = item_schema["oneOf"]
for entry in entries:
    content = entry["properties"].get("data", {}).get("contentSchema")
    if content is not None:
        Draft202012Validator.check_schema(content)
names = [e["properties"]["event"].get("const") for e in entries]
for name in ["sample", "metrics", "channels", "message", "sse-reset", "sse-busy", "sse-reauth", "sse-end"]:
    if name not in names:
        fail(f"itemSchema has no entry for `{name}`: {names}")
parameters = {(p["in"], p["name"]) for p in operation["parameters"]}
for parameter in [("header", "Last-Event-ID"), ("query", "lastEventId"), ("path", "channel")]:
    if parameter not in parameters:
        fail(f"the stream has no {parameter[0]} parameter {parameter[1]}")
ok(f"itemSchema: valid JSON Schema 2020-12, one entry per event: {names}")

# 2. Live events against itemSchema and each entry's contentSchema.
item = Draft202012Validator(item_schema)


def entry_of(event):
    name = event.get("event", "message")
    for entry in entries:
        if entry["properties"]["event"].get("const") == name:
            return entry
    return entries[-1]  # any other name


seen = {}
streams = [
    ("/events/sys.cpu", None),
    ("/events/hub", None),
    ("/events/hub.top", None),
    ("/events/sys.mem", "stale-id"),
]
for path, last_event_id in streams:
    events = read_stream(path, last_event_id)
    for event in events:
        problems = sorted(item.iter_errors(event), key=str)
        if problems:
            fail(f"{path}: {event} does not match itemSchema: {problems[0].message}")
        data = entry_of(event)["properties"]["data"]
        if data.get("contentMediaType") == "application/json":
            Draft202012Validator(data["contentSchema"]).validate(json.loads(event["data"]))
        name = event.get("event", "message")
        seen[name] = seen.get(name, 0) + 1
for name in ["sample", "metrics", "channels", "sse-reset"]:
    if not seen.get(name):
        fail(f"no live `{name}` event was seen: {seen}")
ok(f"live events match itemSchema and contentSchema: {seen}")

# 3. The Prometheus exposition, read with prometheus_client's own parsers.
content_type, text = get("/metrics")
if not content_type.startswith("text/plain"):
    fail(f"/metrics is {content_type}")
families = {f.name: f for f in text_string_to_metric_families(text)}


def sample(name, **labels):
    family_name = name.removesuffix("_total")
    family = families.get(family_name)
    if family is None:
        fail(f"/metrics has no {family_name}")
    for s in family.samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    fail(f"/metrics has no sample {name}{labels}")


if sample("sse_events_published_total") <= 0:
    fail("nothing published, says /metrics")
if sample("sse_streams_opened_total") < len(streams):
    fail("the streams this script opened are not counted")
if sample("sse_streams_closed_total", reason="lifetime") < len(streams):
    fail("the streams this script read to their lifetime are not counted as such")
if sample("sse_resets_total", reason="unknown") < 1:
    fail("the stale resume point's reset is not counted")
if families["sse_delivery_lag_seconds"].type != "histogram":
    fail("sse_delivery_lag_seconds is not a histogram")
if sample("sse_channel_streams_open", channel="hub") is None:
    fail("no per-channel series for `hub`")
_, openmetrics = get("/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
parsed = list(openmetrics_families(openmetrics))
ok(f"/metrics: {len(families)} Prometheus families, {len(parsed)} OpenMetrics families, counters agree")

# 4. Schemathesis against the live demo, streams included.
schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
run = subprocess.run(
    [
        schemathesis,
        "run",
        BASE + "/openapi.json",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_headers_conformance,response_schema_conformance",
        "--max-examples",
        os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "5"),
        "--request-timeout",
        "15",
        "--workers",
        "2",
        "--no-color",
    ],
    capture_output=True,
    text=True,
    timeout=600,
)
if run.returncode != 0:
    print(run.stdout[-6000:])
    print(run.stderr[-2000:])
    fail(f"schemathesis exited with {run.returncode}")
summary = [line for line in run.stdout.splitlines() if "generated" in line and "passed" in line]
ok(f"schemathesis: {summary[-1].strip() if summary else 'passed'}")
