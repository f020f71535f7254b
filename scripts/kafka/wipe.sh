#!/usr/bin/env bash
# Stop the local Kafka broker (or the KAFKA_BROKERS_LOCAL brokers of a local cluster) if
# it runs, then delete its data dir (topics, offsets, KRaft metadata, logs) so the next
# start.sh formats a fresh one. The downloaded jars under .cache/kafka/<version>/libs are
# kept.
# Env: KAFKA_BROKERS_LOCAL (default 1), KAFKA_DATA_DIR (default <repo>/.cache/kafka/data,
# or …/data-<n> for n brokers).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
KAFKA_BROKERS_LOCAL="${KAFKA_BROKERS_LOCAL:-1}"
[[ "$KAFKA_BROKERS_LOCAL" =~ ^[1-9]$ ]] || { echo "wipe.sh: KAFKA_BROKERS_LOCAL must be 1 to 9, not '$KAFKA_BROKERS_LOCAL'" >&2; exit 2; }
DEFAULT_DATA_DIR="$ROOT/.cache/kafka/data"
((KAFKA_BROKERS_LOCAL == 1)) || DEFAULT_DATA_DIR="$ROOT/.cache/kafka/data-$KAFKA_BROKERS_LOCAL"
DATA_DIR="${KAFKA_DATA_DIR:-$DEFAULT_DATA_DIR}"

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
# A broker of another size sharing the folder (one broker and a cluster given the same
# KAFKA_DATA_DIR) may still run from it.
while IFS= read -r pid_file; do
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  if [[ -n "$pid" && "$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)" == *" kafka.Kafka "* ]]; then
    echo "kafka: refusing to delete $abs: broker pid $pid ($pid_file) still runs from it" >&2
    exit 1
  fi
done < <(find "$abs" -maxdepth 2 -name kafka.pid)
rm -rf -- "$abs"
echo "kafka: wiped $abs"
