#!/usr/bin/env bash
# Start a local Apache Kafka (KRaft, combined broker+controller nodes) built only from
# Maven Central jars: there is no Docker and no other download source. One broker unless
# KAFKA_BROKERS_LOCAL asks for a cluster of several, e.g. 3 (replication factor 3 and
# min ISR 2 for Kafka's own topics).
#
#   scripts/kafka/start.sh                       # background; returns once it serves metadata
#   scripts/kafka/start.sh --foreground          # exec java in the foreground (for supervisors)
#   KAFKA_BROKERS_LOCAL=3 scripts/kafka/start.sh # a 3-broker cluster in the background
#
# Idempotent: if something already answers on KAFKA_PORT it says so and exits 0 (a cluster
# with some of its own brokers running starts the others); jars are fetched once per Kafka
# version; storage is formatted once per data dir.
#
# Env:
#   KAFKA_PORT             client listener, default 9092 (127.0.0.1 only)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener, default 9093 (127.0.0.1 only)
#   KAFKA_BROKERS_LOCAL    brokers to run, 1 to 9, default 1. Broker i (from 1) listens on
#                          KAFKA_PORT + 2(i-1) and KAFKA_CONTROLLER_PORT + 2(i-1): with the
#                          defaults and 3 brokers, 9092/9093, 9094/9095 and 9096/9097
#   KAFKA_DATA_DIR         default <repo>/.cache/kafka/data, or …/data-<n> for n brokers,
#                          each of which then has its folder broker-<i> (wipe.sh deletes it)
#   KAFKA_HEAP_OPTS        default "-Xms256m -Xmx512m", per broker
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
KAFKA_BROKERS_LOCAL="${KAFKA_BROKERS_LOCAL:-1}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

[[ "$KAFKA_BROKERS_LOCAL" =~ ^[1-9]$ ]] || { echo "start.sh: KAFKA_BROKERS_LOCAL must be 1 to 9, not '$KAFKA_BROKERS_LOCAL'" >&2; exit 2; }
BROKERS=$KAFKA_BROKERS_LOCAL
if ((FOREGROUND && BROKERS > 1)); then
  echo "start.sh: --foreground runs one broker; unset KAFKA_BROKERS_LOCAL or start the cluster in the background" >&2
  exit 2
fi

# The version lives only in pom.xml; read it from there so the cache path follows it.
KAFKA_VERSION="$(sed -n 's:.*<kafka\.version>\(.*\)</kafka\.version>.*:\1:p' "$SCRIPT_DIR/pom.xml" | head -n 1)"
[[ -n "$KAFKA_VERSION" ]] || { echo "start.sh: no <kafka.version> in $SCRIPT_DIR/pom.xml" >&2; exit 1; }

command -v "$JAVA" >/dev/null || { echo "start.sh: java not found (Kafka $KAFKA_VERSION needs Java 17+)" >&2; exit 1; }

CACHE_DIR="$ROOT/.cache/kafka"
LIBS_DIR="$CACHE_DIR/$KAFKA_VERSION/libs"
LIBS_STAMP="$CACHE_DIR/$KAFKA_VERSION/libs.complete"

# A cluster gets a data dir of its own by default, so it never formats over the broker's.
DEFAULT_DATA_DIR="$CACHE_DIR/data"
((BROKERS == 1)) || DEFAULT_DATA_DIR="$CACHE_DIR/data-$BROKERS"
mkdir -p "$CACHE_DIR" "${KAFKA_DATA_DIR:-$DEFAULT_DATA_DIR}"
DATA_DIR="$(cd "${KAFKA_DATA_DIR:-$DEFAULT_DATA_DIR}" && pwd)" # absolute: it goes into server.properties
CLUSTER_ID_FILE="$DATA_DIR/cluster.id"
DIRECTORY_IDS_FILE="$DATA_DIR/directory.ids"

# Per broker i (1-based): its folder, ports and files. One broker keeps the layout it has
# always had, straight in the data dir.
node_dir() { if ((BROKERS == 1)); then echo "$DATA_DIR"; else echo "$DATA_DIR/broker-$1"; fi; }
client_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
controller_port() { echo $((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1))); }
name_of() { if ((BROKERS == 1)); then echo "broker"; else echo "broker $1"; fi; }

controllers=""
declare -A SEEN_PORTS=()
for ((i = 1; i <= BROKERS; i++)); do
  for p in "$(client_port "$i")" "$(controller_port "$i")"; do
    if [[ -n "${SEEN_PORTS[$p]:-}" ]] || ((p < 1 || p > 65535)); then
      echo "start.sh: port $p would serve twice or is out of range: with $BROKERS brokers, KAFKA_PORT and KAFKA_CONTROLLER_PORT each take every other port from theirs; move them apart" >&2
      exit 2
    fi
    SEEN_PORTS[$p]=1
  done
  controllers+="${controllers:+,}127.0.0.1:$(controller_port "$i")"
done
# Kafka's own topics (offsets, transactions) get the replication a user's topic would.
INTERNAL_RF=$((BROKERS < 3 ? BROKERS : 3))
INTERNAL_MIN_ISR=$((INTERNAL_RF > 1 ? INTERNAL_RF - 1 : 1))

# Serialize concurrent start.sh runs (e.g. parallel test setups) so only one fetches,
# formats and launches; the others then find the port answering. fd 9 is closed for java
# below so the broker itself never holds the lock.
exec 9>"$CACHE_DIR/start.lock"
flock 9

port_open() { (: >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# How many brokers the Kafka on port $1 lists, by a real Kafka round trip, not just a TCP
# connect: Metadata v4 (supported by 3.x and 4.x) with an empty topic list. A broker
# lists itself only once it has registered with the controller, i.e. clients can use it.
# Fails if nothing answers as Kafka does.
broker_count() {
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
  echo $((${13} << 24 | ${14} << 16 | ${15} << 8 | ${16}))
}

# True once the Kafka on port $1 lists at least $2 brokers (default 1).
metadata_ready() {
  local count
  count="$(broker_count "$1")" || return 1
  ((count >= ${2:-1}))
}

# True if $1 is a live java process running kafka.Kafka (guards against recycled pids).
is_our_broker() {
  local cmdline
  [[ -n "$1" ]] && cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline")" || return 1
  [[ "$cmdline" == *" kafka.Kafka "* ]]
}

show_log_tail() {
  local out_file="$1/kafka.out" log_dir="$1/logs"
  # kafka.out only gets WARN+ (and JVM errors); drop stack frames so the cause stays visible.
  if [[ -s "$out_file" ]]; then
    echo "---- $out_file (stack frames omitted) ----" >&2
    grep -v $'^\tat \|^\t\.\.\. [0-9]* more' "$out_file" | tail -n 30 >&2 || true
  fi
  if [[ -s "$log_dir/server.log" ]]; then
    echo "---- last lines of $log_dir/server.log ----" >&2
    tail -n 15 "$log_dir/server.log" >&2
  fi
}

# (a) Already running? Our own brokers (pid files) go to the readiness wait below, which
# returns at once if they are up; anything else answering on the port is left alone.
declare -a PIDS=()
running=0
for ((i = 1; i <= BROKERS; i++)); do
  pid_file="$(node_dir "$i")/kafka.pid"
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  if is_our_broker "$pid"; then
    running=$((running + 1))
  else
    pid=""
    rm -f "$pid_file" # stale: process gone or pid reused
  fi
  PIDS[i]="$pid"
done
if ((running > 0 && FOREGROUND)); then
  echo "kafka: broker pid ${PIDS[1]} from $DATA_DIR/kafka.pid is already running; not starting another" >&2
  exit 1 # a supervisor expects this process to stay up
fi
if ((running == 0)) && port_open "$KAFKA_PORT"; then
  if count="$(broker_count "$KAFKA_PORT")"; then
    if ((count < BROKERS)); then
      echo "kafka: a Kafka of $count broker(s) already serves 127.0.0.1:$KAFKA_PORT, not the $BROKERS asked; not starting another (stop it, or set KAFKA_PORT)"
    else
      echo "kafka: a broker already serves 127.0.0.1:$KAFKA_PORT; not starting another"
    fi
  else
    echo "kafka: something already listens on 127.0.0.1:$KAFKA_PORT (no Kafka metadata answer); not starting another"
  fi
  if ((FOREGROUND)); then
    exit 1 # a supervisor expects this process to stay up
  fi
  exit 0
fi

# Fail fast on a port another process holds: the broker would die a few seconds in with
# "Address already in use".
for ((i = 1; i <= BROKERS; i++)); do
  [[ -z "${PIDS[i]}" ]] || continue
  if ((i > 1)) && port_open "$(client_port "$i")"; then
    echo "kafka: port 127.0.0.1:$(client_port "$i") of $(name_of "$i") is taken by another process; set KAFKA_PORT" >&2
    exit 1
  fi
  if port_open "$(controller_port "$i")"; then
    echo "kafka: controller port 127.0.0.1:$(controller_port "$i") of $(name_of "$i") is taken by another process; set KAFKA_CONTROLLER_PORT" >&2
    exit 1
  fi
done

LOG_OPTS=(-Dlog4j2.configurationFile="$SCRIPT_DIR/log4j2.yaml")
if ((running < BROKERS)); then
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

  # (c) Format once. The cluster id (and for a cluster, each broker's directory id) is
  # kept in the data dir so a format that died halfway is retried with the same ids;
  # meta.properties is what Kafka itself writes when done.
  if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
    mkdir -p "$(node_dir 1)/logs"
    "$JAVA" -cp "$LIBS_DIR/*" "${LOG_OPTS[@]}" -Dkafka.logs.dir="$(node_dir 1)/logs" \
      kafka.tools.StorageTool random-uuid >"$CLUSTER_ID_FILE.tmp"
    mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
  fi
  if ((BROKERS == 1)); then
    # --standalone: single-node dynamic KRaft quorum (pairs with controller.quorum.bootstrap.servers).
    FORMAT_QUORUM=(--standalone)
  else
    # Every broker is a voter of the dynamic quorum (KIP-853), named node.id@host:port:directory id.
    if [[ ! -s "$DIRECTORY_IDS_FILE" ]]; then
      for ((i = 1; i <= BROKERS; i++)); do
        # A Kafka Uuid: 16 random bytes in URL-safe base64, without padding or a leading "-".
        until id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')" && [[ "$id" != -* ]]; do :; done
        echo "$id"
      done >"$DIRECTORY_IDS_FILE.tmp"
      mv "$DIRECTORY_IDS_FILE.tmp" "$DIRECTORY_IDS_FILE"
    fi
    mapfile -t DIRECTORY_IDS <"$DIRECTORY_IDS_FILE"
    voters=""
    for ((i = 1; i <= BROKERS; i++)); do
      voters+="${voters:+,}$i@127.0.0.1:$(controller_port "$i"):${DIRECTORY_IDS[i - 1]}"
    done
    FORMAT_QUORUM=(--initial-controllers "$voters")
  fi

  declare -a FORMATTING=()
  for ((i = 1; i <= BROKERS; i++)); do
    [[ -z "${PIDS[i]}" ]] || continue
    dir="$(node_dir "$i")"
    mkdir -p "$dir/logs"
    # Rendered on every start so port changes apply without a wipe.
    sed -e "s|@KAFKA_NODE_ID@|$i|g" \
      -e "s|@KAFKA_PORT@|$(client_port "$i")|g" \
      -e "s|@KAFKA_CONTROLLER_PORT@|$(controller_port "$i")|g" \
      -e "s|@KAFKA_CONTROLLERS@|$controllers|g" \
      -e "s|@KAFKA_DATA_DIR@|$dir|g" \
      -e "s|@KAFKA_INTERNAL_RF@|$INTERNAL_RF|g" \
      -e "s|@KAFKA_INTERNAL_MIN_ISR@|$INTERNAL_MIN_ISR|g" \
      "$SCRIPT_DIR/server.properties" >"$dir/server.properties"
    if [[ ! -f "$dir/kraft-combined-logs/meta.properties" ]]; then
      echo "kafka: formatting $dir/kraft-combined-logs (cluster id $(cat "$CLUSTER_ID_FILE"))"
      # The brokers of a cluster are formatted side by side: each is a JVM start.
      "$JAVA" -cp "$LIBS_DIR/*" "${LOG_OPTS[@]}" -Dkafka.logs.dir="$dir/logs" kafka.tools.StorageTool format \
        "${FORMAT_QUORUM[@]}" --ignore-formatted \
        --cluster-id "$(cat "$CLUSTER_ID_FILE")" --config "$dir/server.properties" 9>&- &
      FORMATTING+=($!)
    fi
  done
  for pid in "${FORMATTING[@]}"; do
    wait "$pid" || { echo "kafka: formatting the storage failed" >&2; exit 1; }
  done

  launch_start=$SECONDS
  # (d) Launch. Small heap and G1 with few GC threads: the machine has 2 shared cores.
  read -r -a HEAP_OPTS <<<"$KAFKA_HEAP_OPTS"
  read -r -a EXTRA_OPTS <<<"${KAFKA_JVM_OPTS:-}"
  for ((i = 1; i <= BROKERS; i++)); do
    if [[ -n "${PIDS[i]}" ]]; then
      echo "kafka: $(name_of "$i") pid ${PIDS[i]} (from $(node_dir "$i")/kafka.pid) is already running"
      continue
    fi
    dir="$(node_dir "$i")"
    JAVA_CMD=(
      "$JAVA" "${HEAP_OPTS[@]}"
      -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
      -XX:+ExplicitGCInvokesConcurrent -XX:ParallelGCThreads=2 -XX:ConcGCThreads=1
      -XX:+ExitOnOutOfMemoryError
      -Djava.awt.headless=true
      "${LOG_OPTS[@]}" -Dkafka.logs.dir="$dir/logs"
      "${EXTRA_OPTS[@]}"
      -cp "$LIBS_DIR/*" kafka.Kafka "$dir/server.properties"
    )

    if ((FOREGROUND)); then
      echo "kafka: exec Kafka $KAFKA_VERSION in the foreground on 127.0.0.1:$KAFKA_PORT (data $DATA_DIR)"
      echo $$ >"$dir/kafka.pid" # exec keeps this pid, so stop.sh works in this mode too
      exec 9>&-
      exec "${JAVA_CMD[@]}"
    fi

    # setsid: own session, so a Ctrl-C or job-control signal aimed at the caller does not
    # reach the broker. Not -f: the backgrounded child is no group leader, so setsid execs
    # in place and $! is the java pid.
    setsid "${JAVA_CMD[@]}" >"$dir/kafka.out" 2>&1 </dev/null 9>&- &
    PIDS[i]=$!
    echo "${PIDS[i]}" >"$dir/kafka.pid"
    echo "kafka: started Kafka $KAFKA_VERSION $(name_of "$i") (pid ${PIDS[i]}), waiting for 127.0.0.1:$(client_port "$i")"
  done
else
  launch_start=$SECONDS
fi
if ((running == BROKERS && BROKERS == 1)); then
  echo "kafka: broker pid ${PIDS[1]} (from $DATA_DIR/kafka.pid) is already running; checking 127.0.0.1:$KAFKA_PORT"
elif ((running == BROKERS)); then
  echo "kafka: all $BROKERS brokers (pids ${PIDS[*]}, data $DATA_DIR) are already running; checking them"
fi

# (e) Wait until every broker answers a metadata request listing all of them.
deadline=$((SECONDS + KAFKA_START_TIMEOUT))
while ((SECONDS < deadline)); do
  ready=0
  for ((i = 1; i <= BROKERS; i++)); do
    if ! kill -0 "${PIDS[i]}" 2>/dev/null; then
      echo "kafka: $(name_of "$i") process ${PIDS[i]} exited during startup" >&2
      rm -f "$(node_dir "$i")/kafka.pid"
      show_log_tail "$(node_dir "$i")"
      exit 1
    fi
    if port_open "$(client_port "$i")" && metadata_ready "$(client_port "$i")" "$BROKERS"; then
      ready=$((ready + 1))
    fi
  done
  if ((ready == BROKERS)); then
    if ((BROKERS == 1)); then
      echo "kafka: ready on 127.0.0.1:$KAFKA_PORT after $((SECONDS - launch_start))s (pid ${PIDS[1]}, data $DATA_DIR)"
    else
      echo "kafka: $BROKERS brokers ready on 127.0.0.1:$KAFKA_PORT and every other port to $(client_port "$BROKERS") after $((SECONDS - launch_start))s (pids ${PIDS[*]}, data $DATA_DIR)"
    fi
    exit 0
  fi
  sleep 0.5
done

echo "kafka: not ready after ${KAFKA_START_TIMEOUT}s; leaving pids ${PIDS[*]} running (scripts/kafka/stop.sh stops them)" >&2
for ((i = 1; i <= BROKERS; i++)); do show_log_tail "$(node_dir "$i")"; done
exit 1
