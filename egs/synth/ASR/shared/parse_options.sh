# Kaldi-style command-line options for recipe shell scripts.
#
# Declare every option as a variable with its default, then source this file:
#
#   stage=0
#   stop_stage=100
#   perturb_speed=false
#   . shared/parse_options.sh || exit 1
#
#   ./prepare.sh --stage 3 --stop-stage 5 --perturb-speed true data/extra
#
# Rules:
#   --foo-bar VALUE (or --foo-bar=VALUE) sets $foo_bar. Only variables assigned at the top
#     level of the calling script, before the line that sources this file, are options.
#   --help (-h) prints $help_message (if set) and every option with its current value.
#   An unknown option, a missing value, or a value other than true/false for an option whose
#     default is true/false is an error (one line on stderr, exit 1).
#   Parsing stops at "--" or at the first argument not starting with "--"; the remaining
#     arguments stay in "$@" for the script.
# Works under `set -euo pipefail`. Internal names start with __po_ and are unset at the end.

__po_script="${BASH_SOURCE[1]:-$0}"
__po_prog="${__po_script##*/}"

# The options: lower-case variables assigned at the top level of the caller before it sources
# this file (upper-case names are left alone: those are environment variables).
__po_names=()
if [ -f "$__po_script" ]; then
  while IFS= read -r __po_line || [ -n "$__po_line" ]; do
    if [[ "$__po_line" =~ ^[[:space:]]*(\.|source)[[:space:]].*parse_options\.sh ]]; then
      break
    fi
    if [[ "$__po_line" =~ ^([a-z_][a-z0-9_]*)= ]]; then
      __po_name="${BASH_REMATCH[1]}"
      if [ "$__po_name" != help_message ] && [[ " ${__po_names[*]-} " != *" $__po_name "* ]]; then
        __po_names+=("$__po_name")
      fi
    fi
  done < "$__po_script"
fi

__po_valid_options() {
  local name
  for name in "${__po_names[@]-}"; do
    [ -n "$name" ] && printf ' --%s' "${name//_/-}"
  done
}

__po_fail() {
  echo "$__po_prog: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help | -h)
      echo "Usage: $__po_prog [options] [arguments]"
      if [ -n "${help_message:-}" ]; then
        echo "$help_message"
      fi
      echo "Options (current values):"
      for __po_name in "${__po_names[@]-}"; do
        [ -n "$__po_name" ] || continue
        echo "  --${__po_name//_/-} ${!__po_name-}"
      done
      exit 0
      ;;
    --)
      shift
      break
      ;;
    --*=*)
      __po_option="${1%%=*}"
      __po_value="${1#*=}"
      shift
      ;;
    --?*)
      __po_option="$1"
      if [ $# -lt 2 ]; then
        __po_fail "option $__po_option needs a value"
      fi
      if [[ "$2" =~ ^--[A-Za-z] ]]; then
        __po_fail "option $__po_option needs a value, got the option $2"
      fi
      __po_value="$2"
      shift 2
      ;;
    *)
      break
      ;;
  esac

  __po_name="${__po_option#--}"
  __po_name="${__po_name//-/_}"
  __po_known=false
  if [ ${#__po_names[@]} -gt 0 ]; then
    if [[ " ${__po_names[*]} " == *" $__po_name "* ]]; then
      __po_known=true
    fi
  elif [[ "$__po_name" =~ ^[a-z_][a-z0-9_]*$ ]] && declare -p "$__po_name" > /dev/null 2>&1; then
    # Sourced from somewhere we cannot read (an interactive shell): any declared variable.
    __po_known=true
  fi
  if [ "$__po_known" != true ]; then
    __po_fail "unknown option $__po_option; valid options:$(__po_valid_options)"
  fi

  __po_current="${!__po_name-}"
  if [ "$__po_current" = true ] || [ "$__po_current" = false ]; then
    if [ "$__po_value" != true ] && [ "$__po_value" != false ]; then
      __po_fail "option $__po_option takes true or false, got '$__po_value'"
    fi
  fi
  printf -v "$__po_name" '%s' "$__po_value"
done

unset -f __po_valid_options __po_fail
unset __po_script __po_prog __po_names __po_line __po_name __po_option __po_value __po_known \
  __po_current
true
