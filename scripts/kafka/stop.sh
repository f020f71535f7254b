#!/usr/bin/env bash
# Stop the local Kafka broker, or the KAFKA_BROKERS_LOCAL brokers of a local cluster, that
# scripts/kafka/start.sh started (found via their pid files). SIGTERM first so Kafka shuts
# down cleanly (no log recovery on next start), SIGKILL after KAFKA_STOP_TIMEOUT seconds
# (default 30). The brokers of a cluster are stopped together. Exits 0 if none was running.
# Env: KAFKA_BROKERS_LOCAL (default 1), KAFKA_DATA_DIR (default <repo>/.cache/kafka/data,
# or …/data-<n> for n brokers), KAFKA_STOP_TIMEOUT.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
KAFKA_BROKERS_LOCAL="${KAFKA_BROKERS_LOCAL:-1}"
[[ "$KAFKA_BROKERS_LOCAL" =~ ^[1-9]$ ]] || { echo "stop.sh: KAFKA_BROKERS_LOCAL must be 1 to 9, not '$KAFKA_BROKERS_LOCAL'" >&2; exit 2; }
BROKERS=$KAFKA_BROKERS_LOCAL
DEFAULT_DATA_DIR="$ROOT/.cache/kafka/data"
((BROKERS == 1)) || DEFAULT_DATA_DIR="$ROOT/.cache/kafka/data-$BROKERS"
DATA_DIR="${KAFKA_DATA_DIR:-$DEFAULT_DATA_DIR}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

PID_FILES=()
if ((BROKERS == 1)); then
  PID_FILES=("$DATA_DIR/kafka.pid")
else
  for ((i = 1; i <= BROKERS; i++)); do PID_FILES+=("$DATA_DIR/broker-$i/kafka.pid"); done
fi

declare -a STOPPING=()
for pid_file in "${PID_FILES[@]}"; do
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  if [[ -z "$pid" ]]; then
    echo "kafka: not running (no $pid_file)"
    continue
  fi
  # Only signal the pid if it still is a Kafka broker: after a reboot or crash the number
  # may belong to an unrelated process.
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" || true)"
  if [[ "$cmdline" != *" kafka.Kafka "* ]]; then
    echo "kafka: not running (stale pid $pid in $pid_file)"
    rm -f "$pid_file"
    continue
  fi
  echo "kafka: stopping broker pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  STOPPING+=("$pid")
done
((${#STOPPING[@]} > 0)) || exit 0

deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
alive() {
  local count=0
  for pid in "${STOPPING[@]}"; do kill -0 "$pid" 2>/dev/null && count=$((count + 1)); done
  echo "$count"
}
# The last brokers of a cluster to stop cannot finish a controlled shutdown: it needs the
# controller quorum, which left with the majority of the nodes. They get a few seconds for
# what does not need it, then SIGKILL (their logs are recovered at the next start).
quorum=$((BROKERS / 2 + 1))
quorum_lost_at=""
while (($(alive) > 0)) && ((SECONDS < deadline)); do
  if ((BROKERS > 1 && BROKERS - $(alive) >= quorum)); then
    quorum_lost_at="${quorum_lost_at:-$SECONDS}"
    if ((SECONDS - quorum_lost_at >= 5)); then
      echo "kafka: $(alive) broker(s) cannot finish a controlled shutdown without a controller quorum; sending SIGKILL"
      for pid in "${STOPPING[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
      while (($(alive) > 0)); do sleep 0.2; done
    fi
  fi
  sleep 0.5
done
for pid in "${STOPPING[@]}"; do
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka: pid $pid still alive after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  fi
done
rm -f "${PID_FILES[@]}"
echo "kafka: stopped"
