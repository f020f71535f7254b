#!/usr/bin/env bash
# Start a local single-node Apache Kafka broker (KRaft, combined broker+controller)
# built only from Maven Central jars: there is no Docker and no other download source.
#
#   scripts/kafka/start.sh               # background; returns once the broker serves metadata
#   scripts/kafka/start.sh --foreground  # exec java in the foreground (for supervisors)
#
# Idempotent: if something already answers on KAFKA_PORT it says so and exits 0; jars are
# fetched once per Kafka version; storage is formatted once per data dir.
#
# Env:
#   KAFKA_PORT             client listener, default 9092 (127.0.0.1 only)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener, default 9093 (127.0.0.1 only)
#   KAFKA_DATA_DIR         default <repo>/.cache/kafka/data (wipe.sh deletes it)
#   KAFKA_HEAP_OPTS        default "-Xms256m -Xmx512m"
#   KAFKA_JVM_OPTS         extra JVM flags, appended last
#   KAFKA_START_TIMEOUT    seconds to wait for readiness, default 90
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

FOREGROUND=0
for arg in "$@"; do
  case "$arg" in
    --foreground) FOREGROUND=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "start.sh: unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

# The version lives only in pom.xml; read it from there so the cache path follows it.
KAFKA_VERSION="$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$SCRIPT_DIR/pom.xml" | head -n 1)"
[[ -n "$KAFKA_VERSION" ]] || { echo "start.sh: no <kafka.version> in $SCRIPT_DIR/pom.xml" >&2; exit 1; }

command -v "$JAVA" >/dev/null || { echo "start.sh: java not found (Kafka $KAFKA_VERSION needs Java 17+)" >&2; exit 1; }

CACHE_DIR="$ROOT/.cache/kafka"
LIBS_DIR="$CACHE_DIR/$KAFKA_VERSION/libs"
LIBS_STAMP="$CACHE_DIR/$KAFKA_VERSION/libs.complete"

mkdir -p "$CACHE_DIR" "${KAFKA_DATA_DIR:-$CACHE_DIR/data}"
DATA_DIR="$(cd "${KAFKA_DATA_DIR:-$CACHE_DIR/data}" && pwd)" # absolute: it goes into server.properties
PID_FILE="$DATA_DIR/kafka.pid"
OUT_FILE="$DATA_DIR/kafka.out"
PROPS_FILE="$DATA_DIR/server.properties"
CLUSTER_ID_FILE="$DATA_DIR/cluster.id"
LOG_DIR="$DATA_DIR/logs"
META_FILE="$DATA_DIR/kraft-combined-logs/meta.properties"

# Serialize concurrent start.sh runs (e.g. parallel test setups) so only one fetches,
# formats and launches; the others then find the port answering. fd 9 is closed for java
# below so the broker itself never holds the lock.
exec 9>"$CACHE_DIR/start.lock"
flock 9

port_open() { (: >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A real Kafka round trip, not just a TCP connect: Metadata v4 (supported by 3.x and 4.x)
# with an empty topic list. Succeeds only once the broker has registered with the
# controller and lists itself, i.e. clients can actually use it.
metadata_ready() {
  local bytes
  bytes="$(
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    # size=20 | api_key=3 (Metadata) | version=4 | correlation_id=42 | client_id="ready"
    # | topics=[] | allow_auto_topic_creation=false
    printf '\x00\x00\x00\x14\x00\x03\x00\x04\x00\x00\x00\x2a\x00\x05ready\x00\x00\x00\x00\x00' >&3
    # Response: size(4) correlation_id(4) throttle_time_ms(4) brokers_count(4) ...
    timeout 3 head -c 16 <&3 | od -An -v -tu1
  )" 2>/dev/null || return 1
  # shellcheck disable=SC2086 # word splitting of the byte list is intended
  set -- $bytes
  [[ $# -eq 16 && "$5 $6 $7 $8" == "0 0 0 42" ]] || return 1
  (((${13} << 24 | ${14} << 16 | ${15} << 8 | ${16}) >= 1))
}

# True if $1 is a live java process running kafka.Kafka (guards against recycled pids).
is_our_broker() {
  local cmdline
  [[ -n "$1" ]] && cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline")" || return 1
  [[ "$cmdline" == *" kafka.Kafka "* ]]
}

show_log_tail() {
  # kafka.out only gets WARN+ (and JVM errors); drop stack frames so the cause stays visible.
  if [[ -s "$OUT_FILE" ]]; then
    echo "---- $OUT_FILE (stack frames omitted) ----" >&2
    grep -v $'^\tat \|^\t\.\.\. [0-9]* more' "$OUT_FILE" | tail -n 30 >&2 || true
  fi
  if [[ -s "$LOG_DIR/server.log" ]]; then
    echo "---- last lines of $LOG_DIR/server.log ----" >&2
    tail -n 15 "$LOG_DIR/server.log" >&2
  fi
}

# (a) Already running? Our own broker (pid file) goes to the readiness wait below, which
# returns at once if it is up; anything else answering on the port is left alone.
existing_pid="$(cat "$PID_FILE" 2>/dev/null || true)"
if ! is_our_broker "$existing_pid"; then
  existing_pid=""
  rm -f "$PID_FILE" # stale: process gone or pid reused
fi
if [[ -n "$existing_pid" ]] && ((FOREGROUND)); then
  echo "kafka: broker pid $existing_pid from $PID_FILE is already running; not starting another" >&2
  exit 1 # a supervisor expects this process to stay up
fi
if [[ -z "$existing_pid" ]] && port_open "$KAFKA_PORT"; then
  if metadata_ready "$KAFKA_PORT"; then
    echo "kafka: a broker already serves 127.0.0.1:$KAFKA_PORT; not starting another"
  else
    echo "kafka: something already listens on 127.0.0.1:$KAFKA_PORT (no Kafka metadata answer); not starting another"
  fi
  if ((FOREGROUND)); then
    exit 1 # a supervisor expects this process to stay up
  fi
  exit 0
fi

if [[ -z "$existing_pid" ]] && port_open "$KAFKA_CONTROLLER_PORT"; then
  # Fail fast: the broker would die a few seconds in with "Address already in use".
  echo "kafka: controller port 127.0.0.1:$KAFKA_CONTROLLER_PORT is taken by another process; set KAFKA_CONTROLLER_PORT" >&2
  exit 1
fi

if [[ -z "$existing_pid" ]]; then
  # (b) Jars: fetched once per version. The stamp holds the pom's checksum and is written
  # last, so an interrupted download or an edited pom makes the next run fetch again.
  pom_sum="$(sha256sum "$SCRIPT_DIR/pom.xml" | cut -d' ' -f1)"
  if [[ ! -d "$LIBS_DIR" || "$(cat "$LIBS_STAMP" 2>/dev/null || true)" != "$pom_sum" ]]; then
    echo "kafka: fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS_DIR"
    command -v mvn >/dev/null || { echo "start.sh: mvn not found; Maven fetches the Kafka jars" >&2; exit 1; }
    fetch_start=$SECONDS
    rm -rf "$LIBS_DIR" "$LIBS_DIR.tmp" "$LIBS_STAMP"
    mkdir -p "$LIBS_DIR.tmp"
    # Output goes to a file (mvn -q still prints stray ANSI codes); shown only on failure.
    if ! mvn -B -q -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" \
      dependency:copy-dependencies -DoutputDirectory="$LIBS_DIR.tmp" >"$CACHE_DIR/mvn-fetch.log" 2>&1; then
      cat "$CACHE_DIR/mvn-fetch.log" >&2
      echo "kafka: fetching jars with Maven failed (log: $CACHE_DIR/mvn-fetch.log)" >&2
      exit 1
    fi
    mv "$LIBS_DIR.tmp" "$LIBS_DIR"
    echo "$pom_sum" >"$LIBS_STAMP"
    echo "kafka: fetched $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars in $((SECONDS - fetch_start))s"
  fi

  # Rendered on every start so port changes apply without a wipe.
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
    -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    -e "s|@KAFKA_DATA_DIR@|$DATA_DIR|g" \
    "$SCRIPT_DIR/server.properties" >"$PROPS_FILE"
  mkdir -p "$LOG_DIR"

  LOG_OPTS=(-Dlog4j2.configurationFile="$SCRIPT_DIR/log4j2.yaml" -Dkafka.logs.dir="$LOG_DIR")

  # (c) Format once. The cluster id is kept in the data dir so a format that died halfway
  # is retried with the same id; meta.properties is what Kafka itself writes when done.
  if [[ ! -f "$META_FILE" ]]; then
    if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
      "$JAVA" -cp "$LIBS_DIR/*" "${LOG_OPTS[@]}" kafka.tools.StorageTool random-uuid >"$CLUSTER_ID_FILE.tmp"
      mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
    fi
    echo "kafka: formatting $DATA_DIR/kraft-combined-logs (cluster id $(cat "$CLUSTER_ID_FILE"))"
    # --standalone: single-node dynamic KRaft quorum (pairs with controller.quorum.bootstrap.servers).
    "$JAVA" -cp "$LIBS_DIR/*" "${LOG_OPTS[@]}" kafka.tools.StorageTool format \
      --standalone --ignore-formatted \
      --cluster-id "$(cat "$CLUSTER_ID_FILE")" --config "$PROPS_FILE"
  fi

  # (d) Launch. Small heap and G1 with few GC threads: the machine has 2 shared cores.
  read -r -a HEAP_OPTS <<<"$KAFKA_HEAP_OPTS"
  read -r -a EXTRA_OPTS <<<"${KAFKA_JVM_OPTS:-}"
  JAVA_CMD=(
    "$JAVA" "${HEAP_OPTS[@]}"
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -XX:ParallelGCThreads=2 -XX:ConcGCThreads=1
    -XX:+ExitOnOutOfMemoryError
    -Djava.awt.headless=true
    "${LOG_OPTS[@]}"
    "${EXTRA_OPTS[@]}"
    -cp "$LIBS_DIR/*" kafka.Kafka "$PROPS_FILE"
  )

  if ((FOREGROUND)); then
    echo "kafka: exec Kafka $KAFKA_VERSION in the foreground on 127.0.0.1:$KAFKA_PORT (data $DATA_DIR)"
    echo $$ >"$PID_FILE" # exec keeps this pid, so stop.sh works in this mode too
    exec 9>&-
    exec "${JAVA_CMD[@]}"
  fi

  launch_start=$SECONDS
  # setsid: own session, so a Ctrl-C or job-control signal aimed at the caller does not
  # reach the broker. Not -f: the backgrounded child is no group leader, so setsid execs
  # in place and $! is the java pid.
  setsid "${JAVA_CMD[@]}" >"$OUT_FILE" 2>&1 </dev/null 9>&- &
  existing_pid=$!
  echo "$existing_pid" >"$PID_FILE"
  echo "kafka: started Kafka $KAFKA_VERSION (pid $existing_pid), waiting for 127.0.0.1:$KAFKA_PORT"
else
  launch_start=$SECONDS
  echo "kafka: broker pid $existing_pid (from $PID_FILE) is already running; checking 127.0.0.1:$KAFKA_PORT"
fi

# (e) Wait until the broker answers a metadata request listing itself.
deadline=$((SECONDS + KAFKA_START_TIMEOUT))
while ((SECONDS < deadline)); do
  if ! kill -0 "$existing_pid" 2>/dev/null; then
    echo "kafka: broker process $existing_pid exited during startup" >&2
    rm -f "$PID_FILE"
    show_log_tail
    exit 1
  fi
  if port_open "$KAFKA_PORT" && metadata_ready "$KAFKA_PORT"; then
    echo "kafka: ready on 127.0.0.1:$KAFKA_PORT after $((SECONDS - launch_start))s (pid $existing_pid, data $DATA_DIR)"
    exit 0
  fi
  sleep 0.5
done

echo "kafka: not ready after ${KAFKA_START_TIMEOUT}s; leaving pid $existing_pid running (scripts/kafka/stop.sh stops it)" >&2
show_log_tail
exit 1
