# Shared by every recipe's prepare.sh: source it after parse_options.sh.
#   log MESSAGE...              timestamped message naming the calling script, line and function
#   run_stage N NAME CMD...     runs CMD as stage N when $stage <= N <= $stop_stage and
#                               data/.stageN.done is absent; marks it done and logs how long it took

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

run_stage() {
  local n=$1 name=$2
  shift 2
  if [ "$stage" -le "$n" ] && [ "$stop_stage" -ge "$n" ]; then
    if [ -f "data/.stage$n.done" ]; then
      log "Stage $n ($name): done before (data/.stage$n.done), skipping"
      return 0
    fi
    log "Stage $n: $name"
    local start=$SECONDS
    "$@"
    touch "data/.stage$n.done"
    log "Stage $n ($name) took $((SECONDS - start)) s"
  fi
}
