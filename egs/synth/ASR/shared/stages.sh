# Shared by every recipe's prepare.sh: source it after parse_options.sh.
#   log MESSAGE...              timestamped message naming the calling script, line and function
#   run_stage N NAME CMD...     runs CMD as stage N when $stage <= N <= $stop_stage and
#                               data/.stageN.done is absent; marks it done and logs how long it took
#
# Sourcing it checks the command line first (one line on stderr, exit 1): --stage and
# --stop-stage must be integers with stage <= stop-stage, and prepare.sh takes no positional
# arguments (what parse_options.sh left in "$@"), so a typo never runs nothing and exits 0.

__stages_prog="${BASH_SOURCE[1]:-$0}"
__stages_prog="${__stages_prog##*/}"
if [ $# -gt 0 ]; then
  echo "$__stages_prog: unexpected argument '$1': options are --name value (see --help)" >&2
  exit 1
fi
for __stages_option in stage stop_stage; do
  if ! [[ "${!__stages_option-}" =~ ^-?[0-9]+$ ]]; then
    echo "$__stages_prog: --${__stages_option//_/-} must be an integer, got '${!__stages_option-}'" >&2
    exit 1
  fi
done
if [ "$stage" -gt "$stop_stage" ]; then
  echo "$__stages_prog: --stage $stage is after --stop-stage $stop_stage: nothing would run" >&2
  exit 1
fi
unset __stages_prog __stages_option

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
