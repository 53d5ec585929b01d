#!/usr/bin/env bash
# Builds and starts one dev server (throwaway Postgres, in-process S3, streams ended by the
# server every STREAM_MAX_SECONDS=3 s), runs the client tests (client/) and the browser test
# (tests/e2e/) against it, stops it, and exits non-zero if either failed.
#
# Needs: `npm ci` done in client/ and tests/e2e/, Debian's chromium (`apt-get install
# chromium`; CHROMIUM_PATH overrides /usr/bin/chromium) and the PostgreSQL server package.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ARTIFACTS=$ROOT/tests/artifacts
mkdir -p "$ARTIFACTS"

for dir in client tests/e2e; do
  if [ ! -d "$dir/node_modules" ]; then
    echo "run.sh: run 'npm ci' in $dir first" >&2
    exit 2
  fi
done

export STREAM_MAX_SECONDS=3
# DEV_SERVER_BIN: a dev-server binary already built (CI reuses the one it built for the
# benchmark smoke run instead of building it again).
if [ -z "${DEV_SERVER_BIN:-}" ]; then
  cargo build -q -p chat-dev --bin dev-server
  DEV_SERVER_BIN=$ROOT/target/debug/dev-server
fi

PORT=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
export CHAT_API_URL="http://localhost:$PORT"

# Its own process group, so one signal stops it and its Postgres.
PORT=$PORT RUST_LOG=${RUST_LOG:-warn} setsid "$DEV_SERVER_BIN" >"$ARTIFACTS/dev-server.log" 2>&1 &
SERVER=$!

stop_server() {
  if kill -0 "$SERVER" 2>/dev/null; then
    kill -INT -- "-$SERVER" 2>/dev/null || true
    for _ in $(seq 1 60); do
      kill -0 "$SERVER" 2>/dev/null || return 0
      sleep 0.25
    done
    kill -KILL -- "-$SERVER" 2>/dev/null || true
  fi
}
trap stop_server EXIT

for i in $(seq 1 240); do
  if node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
    "$CHAT_API_URL/api/health"; then
    break
  fi
  if ! kill -0 "$SERVER" 2>/dev/null || [ "$i" = 240 ]; then
    echo "run.sh: the dev server did not come up; its log:" >&2
    cat "$ARTIFACTS/dev-server.log" >&2
    exit 1
  fi
  sleep 0.5
done
echo "run.sh: dev server on $CHAT_API_URL (STREAM_MAX_SECONDS=$STREAM_MAX_SECONDS)"

status=0
echo "== client tests (client/)"
(cd client && npm test) || status=1
echo "== browser test (tests/e2e/)"
(cd tests/e2e && npm test) || status=1

if [ "$status" -ne 0 ]; then
  echo "run.sh: FAILED; the dev server's log is $ARTIFACTS/dev-server.log" >&2
fi
exit "$status"
