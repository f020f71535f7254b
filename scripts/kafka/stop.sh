#!/usr/bin/env bash
# Stop the local Kafka broker that scripts/kafka/start.sh started (found via its pid file).
# SIGTERM first so Kafka shuts down cleanly (no log recovery on next start), SIGKILL after
# KAFKA_STOP_TIMEOUT seconds (default 30). Exits 0 if it was not running.
# Env: KAFKA_DATA_DIR (default <repo>/.cache/kafka/data), KAFKA_STOP_TIMEOUT.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
DATA_DIR="${KAFKA_DATA_DIR:-$ROOT/.cache/kafka/data}"
PID_FILE="$DATA_DIR/kafka.pid"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

pid="$(cat "$PID_FILE" 2>/dev/null || true)"
if [[ -z "$pid" ]]; then
  echo "kafka: not running (no $PID_FILE)"
  exit 0
fi

# Only signal the pid if it still is a Kafka broker: after a reboot or crash the number
# may belong to an unrelated process.
cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)"
if [[ "$cmdline" != *" kafka.Kafka "* ]]; then
  echo "kafka: not running (stale pid $pid in $PID_FILE)"
  rm -f "$PID_FILE"
  exit 0
fi

echo "kafka: stopping broker pid $pid"
kill -TERM "$pid" 2>/dev/null || true
deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
  sleep 0.5
done
if kill -0 "$pid" 2>/dev/null; then
  echo "kafka: pid $pid still alive after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
fi
rm -f "$PID_FILE"
echo "kafka: stopped"
