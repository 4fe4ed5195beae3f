#!/usr/bin/env bash
# Benchmarks: poem-sse-ext (the demo app) side by side with poem's SSE, axum's Sse and
# FastAPI + sse-starlette.
#
#   bench/run.sh                 full run: release build, servers pinned to core 0 and the load
#                                generator to core 1, 3 repetitions, writes BENCHMARKS.md and
#                                bench/results/ (chart and raw figures)
#   bench/run.sh --smoke         a few hundred streams for a few seconds, one repetition, no
#                                pinning; exits non-zero if an event is lost or a scenario fails;
#                                writes its report under cargo's target directory (bench/smoke/)
#
# Options: --reps N, --scenarios idle,load,load_h2,maxrate,storm,shutdown,cleanup,crowd,
#          --servers product,poem,axum,python,floor (floor: a bare hyper server whose stream
#          sends one frame and waits, measured idle only: what hyper itself keeps per stream;
#          and product-hyper: the product with HTTP/1.1 streams
#          through hyper, --no-lean-streams; product-redis: the product on a Redis store of its
#          own, when redis-server is installed), --release / --debug, --python (smoke: include the
#          FastAPI peer, creating its venv if needed).
# All traffic stays on 127.0.0.0/8.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

SMOKE=0
REPS=""
SCENARIOS=""
SERVERS="product,poem,axum,python,floor"
PROFILE=""
WANT_PYTHON=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --reps) REPS="$2"; shift ;;
    --scenarios) SCENARIOS="$2"; shift ;;
    --servers) SERVERS="$2"; shift ;;
    --release) PROFILE=release ;;
    --debug) PROFILE=debug ;;
    --python) WANT_PYTHON=1 ;;
    -h|--help) sed -n '2,/^# All traffic/p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$PROFILE" ]; then
  if [ "$SMOKE" = 1 ]; then PROFILE=debug; else PROFILE=release; fi
fi
if [ "$SMOKE" = 1 ] && [ -z "$WANT_PYTHON" ] && [ -x bench/.venv/bin/python ]; then
  WANT_PYTHON=1
fi
if [ "$SMOKE" = 0 ]; then WANT_PYTHON=1; fi

has() { case ",$SERVERS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# Binaries are wherever cargo puts them: CARGO_TARGET_DIR, build.target-dir in a cargo config,
# or ./target. cargo metadata resolves all of these.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ -z "$TARGET_DIR" ]; then
  echo "run.sh: cargo metadata did not name a target directory" >&2
  exit 1
fi

NOTES=()
OUT_DIR="$TARGET_DIR/bench"
if [ "$SMOKE" = 1 ]; then OUT_DIR="$TARGET_DIR/bench/smoke"; fi
mkdir -p "$OUT_DIR"

cargo_flags=()
if [ "$PROFILE" = release ]; then cargo_flags+=(--release); fi
BIN="$TARGET_DIR/$PROFILE"

echo "== building ($PROFILE)" >&2
cargo build "${cargo_flags[@]}" -p bench --bins >&2
if [ ! -x "$BIN/sse-bench" ]; then
  echo "run.sh: bench built, but $BIN/sse-bench is missing" >&2
  exit 1
fi

PRODUCT=0
if has product; then
  if ! cargo build "${cargo_flags[@]}" -p demo-app >&2; then
    NOTES+=("poem-sse-ext (demo-app) skipped: it does not build")
    echo "run.sh: demo-app does not build; benchmarking the peers only" >&2
  elif [ ! -x "$BIN/demo-app" ]; then
    echo "run.sh: demo-app built, but $BIN/demo-app is missing" >&2
    exit 1
  elif ! timeout 10 "$BIN/demo-app" --help 2>&1 | grep -q -- '--plain'; then
    # The demo is still a placeholder: its command line (DESIGN.md) is not there yet.
    NOTES+=("poem-sse-ext (demo-app) skipped: its binary does not offer --plain yet")
    echo "run.sh: demo-app has no --plain yet; benchmarking the peers only" >&2
  else
    PRODUCT=1
  fi
fi

PYTHON=0
PY_VERSION=""
if has python && [ -n "$WANT_PYTHON" ]; then
  if ! command -v python3 >/dev/null 2>&1; then
    NOTES+=("FastAPI + sse-starlette skipped: python3 is not installed")
  else
    if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import fastapi, sse_starlette, uvicorn' 2>/dev/null; then
      echo "== creating bench/.venv" >&2
      if ! { python3 -m venv bench/.venv && bench/.venv/bin/pip install -q -r bench/python/requirements.txt; } >&2; then
        NOTES+=("FastAPI + sse-starlette skipped: its virtual environment could not be created (pip install failed)")
      fi
    fi
    if bench/.venv/bin/python -c 'import fastapi, sse_starlette, uvicorn' 2>/dev/null; then
      PYTHON=1
      PY_VERSION=$(bench/.venv/bin/python - <<'PY' 2>/dev/null || true
import sys
from importlib.metadata import version
names = ["fastapi", "starlette", "sse-starlette", "uvicorn"]
print("Python " + sys.version.split()[0] + ", " + ", ".join(n + " " + version(n) for n in names))
PY
)
    fi
  fi
fi

# The product on the Redis store (--servers product-redis): a redis-server of its own on a free
# loopback port, without persistence, stopped when this script ends.
REDIS_URL=""
if [ "$PRODUCT" = 1 ] && has product-redis; then
  if command -v redis-server >/dev/null 2>&1; then
    REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-redis.XXXXXX")
    REDIS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" --daemonize yes >/dev/null
    trap 'kill "$(cat "$REDIS_DIR/redis.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$REDIS_DIR"' EXIT
    for _ in $(seq 50); do
      redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  else
    NOTES+=("poem-sse-ext on Redis skipped: redis-server is not installed")
  fi
fi

GIT_REV=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
POEM_V=$(grep -A1 '^name = "poem"$' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p' | head -1)
AXUM_V=$(grep -A1 '^name = "axum"$' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p' | head -1)
HYPER_V=$(grep -A1 '^name = "hyper"$' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p' | head -1)

SERVERS_JSON="$OUT_DIR/servers.json"
{
  echo "["
  sep=""
  if [ "$PRODUCT" = 1 ]; then
    printf '%s  {"name": "poem-sse-ext", "product": true, "h2": "h2c",\n' "$sep"
    printf '   "cmd": ["%s/demo-app", "--plain", "--listen", "{addr}", "--heartbeat", "15s", "--history", "1000", "--max-connections-per-ip", "0", "--max-streams", "200000", "--max-streams-per-channel", "200000"],\n' "$BIN"
    printf '   "tls_cmd": ["%s/demo-app", "--listen", "{addr}", "--heartbeat", "15s", "--history", "1000", "--max-connections-per-ip", "0", "--max-streams", "200000", "--max-streams-per-channel", "200000"],\n' "$BIN"
    printf '   "version": "demo-app at %s (in-memory store, history 1000)"}\n' "$GIT_REV"
    sep=","
  fi
  if [ "$PRODUCT" = 1 ] && has product-hyper; then
    # The product with HTTP/1.1 event streams served through hyper, as before the lean path.
    printf '%s  {"name": "poem-sse-ext via hyper", "h2": "h2c",\n' "$sep"
    printf '   "cmd": ["%s/demo-app", "--plain", "--no-lean-streams", "--listen", "{addr}", "--heartbeat", "15s", "--history", "1000", "--max-connections-per-ip", "0", "--max-streams", "200000", "--max-streams-per-channel", "200000"],\n' "$BIN"
    printf '   "tls_cmd": ["%s/demo-app", "--no-lean-streams", "--listen", "{addr}", "--heartbeat", "15s", "--history", "1000", "--max-connections-per-ip", "0", "--max-streams", "200000", "--max-streams-per-channel", "200000"],\n' "$BIN"
    printf '   "version": "demo-app at %s with --no-lean-streams (HTTP/1.1 streams through hyper)"}\n' "$GIT_REV"
    sep=","
  fi
  if [ -n "$REDIS_URL" ]; then
    # Not pinned with the server: redis-server runs wherever the kernel puts it.
    printf '%s  {"name": "poem-sse-ext, Redis store", "h2": "h2c",\n' "$sep"
    printf '   "cmd": ["%s/demo-app", "--plain", "--store", "%s", "--listen", "{addr}", "--heartbeat", "15s", "--history", "1000", "--max-connections-per-ip", "0", "--max-streams", "200000", "--max-streams-per-channel", "200000"],\n' "$BIN" "$REDIS_URL"
    printf '   "version": "demo-app at %s on the Redis store (redis-server %s, its own, not pinned)"}\n' "$GIT_REV" "$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
    sep=","
  fi
  if has poem; then
    printf '%s  {"name": "poem SSE", "h2": "h2c",\n' "$sep"
    printf '   "cmd": ["%s/peer-poem", "--listen", "{addr}", "--heartbeat", "15s"],\n' "$BIN"
    printf '   "version": "poem %s, poem::web::sse::SSE + tokio broadcast (bench/src/bin/peer_poem.rs)"}\n' "$POEM_V"
    sep=","
  fi
  if has axum; then
    printf '%s  {"name": "axum Sse", "h2": "h2c",\n' "$sep"
    printf '   "cmd": ["%s/peer-axum", "--listen", "{addr}", "--heartbeat", "15s"],\n' "$BIN"
    printf '   "version": "axum %s, axum::response::sse::Sse + tokio broadcast (bench/src/bin/peer_axum.rs)"}\n' "$AXUM_V"
    sep=","
  fi
  if [ "$PYTHON" = 1 ]; then
    printf '%s  {"name": "FastAPI + sse-starlette", "h2": "none",\n' "$sep"
    printf '   "cmd": ["%s/bench/.venv/bin/python", "%s/bench/python/app.py", "--listen", "{addr}", "--heartbeat", "15s"],\n' "$ROOT" "$ROOT"
    printf '   "version": "%s on uvicorn (uvloop, httptools), one process; no HTTP/2"}\n' "$PY_VERSION"
    sep=","
  fi
  if has floor; then
    printf '%s  {"name": "hyper floor", "h2": "h2c", "scenarios": ["idle"],\n' "$sep"
    printf '   "cmd": ["%s/peer-floor", "--listen", "{addr}"],\n' "$BIN"
    printf '   "version": "hyper %s, a bare server whose stream sends one frame and then waits: no SSE, measured idle only (bench/src/bin/peer_floor.rs)"}\n' "$HYPER_V"
    sep=","
  fi
  echo "]"
} > "$SERVERS_JSON"

suite=("$BIN/sse-bench" suite --servers "$SERVERS_JSON" --log-dir "$OUT_DIR/logs")
[ -n "$REPS" ] && suite+=(--reps "$REPS")
[ -n "$SCENARIOS" ] && suite+=(--scenarios "$SCENARIOS")
for n in "${NOTES[@]+"${NOTES[@]}"}"; do suite+=(--note "$n"); done

if [ "$SMOKE" = 1 ]; then
  echo "== smoke run (report: $OUT_DIR/BENCHMARKS.md)" >&2
  timeout 600 "${suite[@]}" --smoke --out "$OUT_DIR/BENCHMARKS.md" --raw "$OUT_DIR/results.jsonl" \
    --command "bench/run.sh --smoke"
  exit $?
fi

mkdir -p bench/results
pin=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc --all)" -ge 2 ]; then
  suite+=(--pin-server 0)
  pin=(taskset -c 1)
else
  suite+=(--note "not pinned: taskset or a second core is missing")
fi
echo "== full run (this takes a while)" >&2
"${pin[@]}" "${suite[@]}" --out BENCHMARKS.md --svg bench/results/benchmarks.svg \
  --svg-link bench/results/benchmarks.svg --raw bench/results/results.jsonl --command "bench/run.sh"
