#!/usr/bin/env bash
# Stop the local Kafka broker if it runs, then delete its data dir (topics, offsets,
# KRaft metadata, logs) so the next start.sh formats a fresh cluster. The downloaded
# jars under .cache/kafka/<version>/libs are kept.
# Env: KAFKA_DATA_DIR (default <repo>/.cache/kafka/data).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
DATA_DIR="${KAFKA_DATA_DIR:-$ROOT/.cache/kafka/data}"

"$SCRIPT_DIR/stop.sh"

if [[ ! -e "$DATA_DIR" ]]; then
  echo "kafka: nothing to wipe ($DATA_DIR does not exist)"
  exit 0
fi
abs="$(cd "$DATA_DIR" && pwd -P)"
# Guard against a mistyped KAFKA_DATA_DIR pointing at something precious.
case "$abs" in
  / | "$HOME" | "$(cd "$ROOT" && pwd -P)" | "$(cd "$ROOT/.cache" 2>/dev/null && pwd -P)")
    echo "kafka: refusing to delete $abs (KAFKA_DATA_DIR looks wrong)" >&2
    exit 1
    ;;
esac
rm -rf -- "$abs"
echo "kafka: wiped $abs"
