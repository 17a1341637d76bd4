#!/usr/bin/env bash
# Set up everything icefall-lite needs on this machine; safe to run again (a repeat run with
# nothing changed takes seconds).
#
# Usage:
#   tools/setup.sh                 # apt packages, venv, requirements, kaldifeat + fast_rnnt, icefall_lite
#   tools/setup.sh --no-build      # skip the kaldifeat / fast_rnnt source builds (pure-Python fallbacks are used)
#   tools/setup.sh --no-apt        # never call apt-get (only report missing Debian packages)
#   VENV=/path/to/venv tools/setup.sh   # use another virtual environment (default: <repo>/.venv)
#
# Steps:
#   apt           install the Debian packages in tools/debian-packages.txt that are missing
#   venv          create the virtual environment, or reuse the one that is there
#   requirements  pip install -r requirements.txt; a torch already in the venv (say a CUDA build)
#                 is kept: torch is left out of the list and pinned to the installed version
#   build         kaldifeat==1.24 and fast_rnnt==1.3 from their PyPI sdists, offline (pybind11 from
#                 its sdist, C++17); built wheels are kept in $WHEEL_CACHE for the next run
#   editable      pip install -e . (the icefall_lite package)
#   check         import what was installed and print the versions
#
# Environment:
#   VENV            virtual environment to create or reuse (default: <repo>/.venv)
#   PYTHON          interpreter used to create a new venv (default: python3)
#   WHEEL_CACHE     where built kaldifeat / fast_rnnt wheels are kept
#                   (default: ~/.cache/icefall-lite/wheels/<torch version>-<python tag>)
#   SETUP_JOBS      parallel compile jobs for the C++ builds (default: 2)
#   DEBIAN_PACKAGES the package list to check (default: tools/debian-packages.txt)

set -euo pipefail
set -o errtrace

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO_ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
SETUP_JOBS="${SETUP_JOBS:-2}"
DEBIAN_PACKAGES="${DEBIAN_PACKAGES:-$REPO_ROOT/tools/debian-packages.txt}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/icefall-lite"

KALDIFEAT_VERSION=1.24
FAST_RNNT_VERSION=1.3
PYBIND11_VERSION=3.0.4

do_build=1
do_apt=1

usage() {
  sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-build) do_build=0 ;;
    --no-apt) do_apt=0 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "setup.sh: unknown option '$1' (see tools/setup.sh --help)" >&2
      exit 2
      ;;
  esac
  shift
done

# ---------------------------------------------------------------------------------------------
# Step wrapper: names every step, times it, and on failure says which step broke.
current_step="start-up"
summary=()

on_error() {
  local rc=$?
  echo "" >&2
  echo "setup.sh: FAILED in step '$current_step' (exit code $rc); see the messages above." >&2
  exit "$rc"
}
trap on_error ERR

step() {
  local name="$1"
  shift
  current_step="$name"
  echo "==> [$name]"
  local t0=$SECONDS
  "$@"
  local dt=$((SECONDS - t0))
  summary+=("$(printf '%-13s %4ds  %s' "$name" "$dt" "${step_note:-done}")")
  echo "    [$name] ${step_note:-done} (${dt}s)"
  step_note=""
}
step_note=""

# Prints the command and runs it (so the log shows exactly what was done).
run() {
  echo "    \$ $*"
  "$@"
}

vpy() { "$VENV/bin/python" "$@"; }
vpip() { "$VENV/bin/python" -m pip "$@"; }

# ---------------------------------------------------------------------------------------------
# apt: Debian packages. A line "name  # optional" marks a package the recipes can live without;
# "name  # build" one that only the kaldifeat / fast_rnnt build needs (skipped with --no-build).
apt_packages() {
  local list="$DEBIAN_PACKAGES"
  if [[ ! -f "$list" ]]; then
    echo "setup.sh: Debian package list $list does not exist (DEBIAN_PACKAGES)" >&2
    return 1
  fi
  local required=() optional=() missing_req=() missing_opt=() line name tag
  while IFS= read -r line || [[ -n "$line" ]]; do
    name="${line%%#*}"
    name="$(echo "$name" | tr -d '[:space:]')"
    [[ -z "$name" ]] && continue
    tag=""
    [[ "$line" == *"#"* ]] && tag="${line#*#}"
    if [[ "$tag" == *build* && $do_build -eq 0 ]]; then
      continue
    elif [[ "$tag" == *optional* ]]; then
      optional+=("$name")
    else
      required+=("$name")
    fi
  done <"$list"

  local pkg
  for pkg in "${required[@]}"; do
    is_installed "$pkg" || missing_req+=("$pkg")
  done
  for pkg in "${optional[@]}"; do
    is_installed "$pkg" || missing_opt+=("$pkg")
  done
  local missing=("${missing_req[@]}" "${missing_opt[@]}")
  if [[ ${#missing[@]} -eq 0 ]]; then
    step_note="all ${#required[@]} required + ${#optional[@]} optional packages present"
    return 0
  fi
  echo "    missing Debian packages: ${missing[*]}"

  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo"
    else
      sudo="none"
    fi
  fi
  local hint="sudo apt-get install -y ${missing[*]}"
  if [[ $do_apt -eq 0 || "$sudo" == "none" ]]; then
    if [[ $do_apt -eq 0 ]]; then
      echo "    --no-apt given; install them yourself with:  $hint"
    else
      echo "    not root and no password-less sudo; install them yourself with:  $hint"
    fi
    # With --no-apt the user has chosen to manage packages; warn only.
    if [[ ${#missing_req[@]} -gt 0 && $do_apt -eq 1 ]]; then
      echo "setup.sh: required Debian packages missing: ${missing_req[*]}" >&2
      return 1
    fi
    step_note="skipped; missing: ${missing[*]}"
    return 0
  fi

  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be stale or absent (fresh containers); refresh once before installing.
  if ! run ${sudo:+$sudo} apt-get install -y --no-install-recommends "${missing[@]}"; then
    run ${sudo:+$sudo} apt-get update -qq || true
    if ! run ${sudo:+$sudo} apt-get install -y --no-install-recommends "${missing[@]}"; then
      echo "setup.sh: apt-get could not install: ${missing[*]}; try yourself:  $hint" >&2
      local still=()
      for pkg in "${missing_req[@]}"; do
        is_installed "$pkg" || still+=("$pkg")
      done
      if [[ ${#still[@]} -gt 0 ]]; then
        echo "setup.sh: required Debian packages still missing: ${still[*]}" >&2
        return 1
      fi
    fi
  fi
  step_note="installed ${missing[*]}"
}

is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

# ---------------------------------------------------------------------------------------------
# venv
make_venv() {
  if [[ -x "$VENV/bin/python" ]]; then
    step_note="reusing $VENV ($("$VENV/bin/python" --version 2>&1))"
    return 0
  fi
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "setup.sh: no '$PYTHON' interpreter found; set PYTHON=/path/to/python3.10+" >&2
    return 1
  fi
  if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "setup.sh: $PYTHON is $("$PYTHON" --version 2>&1); icefall-lite needs Python >= 3.10" >&2
    return 1
  fi
  if ! run "$PYTHON" -m venv "$VENV"; then
    echo "setup.sh: '$PYTHON -m venv' failed; on Debian: apt-get install python3-venv" >&2
    return 1
  fi
  step_note="created $VENV"
}

# ---------------------------------------------------------------------------------------------
# requirements
# The stamp records what the venv was last set up from; an unchanged stamp means pip can be skipped.
stamp_file() { echo "$VENV/.icefall-lite-setup.sha256"; }

requirements_hash() {
  cat "$REPO_ROOT/requirements.txt" "$REPO_ROOT/setup.cfg" "$REPO_ROOT/pyproject.toml" \
    | sha256sum | cut -d' ' -f1
}

# Installed version of a distribution, empty when absent (no import: torch takes seconds).
dist_version() {
  vpy - "$1" <<'EOF' 2>/dev/null || true
import sys
from importlib import metadata

try:
    print(metadata.version(sys.argv[1]))
except metadata.PackageNotFoundError:
    pass
EOF
}

# True when every "name==version" pin in requirements.txt is installed (torch: any version, since
# a user's own build is kept). Reads package metadata only, so it takes well under a second.
pins_satisfied() {
  vpy - "$REPO_ROOT/requirements.txt" <<'EOF'
import re
import sys
from importlib import metadata

wrong = []
for line in open(sys.argv[1]):
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?==([^\s;]+)", line.split("#")[0].strip())
    if not match:
        continue
    name, _, pinned = match.groups()
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        wrong.append(f"{name} missing")
        continue
    if name.lower() != "torch" and have.split("+")[0] != pinned:
        wrong.append(f"{name} {have} (want {pinned})")
if wrong:
    print("    requirements not satisfied: " + ", ".join(wrong))
sys.exit(1 if wrong else 0)
EOF
}

install_requirements() {
  local want
  want="$(requirements_hash)"
  if [[ -f "$(stamp_file)" && "$(cat "$(stamp_file)")" == "$want" ]] && pins_satisfied; then
    step_note="unchanged since last run (requirements.txt, setup.cfg); pip skipped"
    return 0
  fi

  local present_torch
  present_torch="$(dist_version torch)"
  if [[ -n "$present_torch" ]]; then
    # Keep the user's torch (a CUDA build, a newer release): leave it out and pin it so that no
    # other requirement can pull in a replacement.
    local tmp
    tmp="$(mktemp -d)"
    grep -viE '^[[:space:]]*torch([<>=!~ ;[]|$)' "$REPO_ROOT/requirements.txt" >"$tmp/requirements.txt"
    echo "torch==$present_torch" >"$tmp/constraints.txt"
    echo "    keeping the installed torch $present_torch"
    run vpip install -r "$tmp/requirements.txt" -c "$tmp/constraints.txt"
    rm -rf "$tmp"
    step_note="installed requirements.txt (kept torch $present_torch)"
  else
    run vpip install -r "$REPO_ROOT/requirements.txt"
    step_note="installed requirements.txt (torch $(dist_version torch))"
  fi
  echo "$want" >"$(stamp_file)"
}

# ---------------------------------------------------------------------------------------------
# build: kaldifeat and fast_rnnt compiled against the venv's torch.
compiled_ok() {
  vpy -c "import torch, kaldifeat, fast_rnnt" 2>/dev/null
}

# --no-build-isolation builds use the venv's own setuptools and wheel; Python 3.12+ venvs come
# without setuptools and 3.11's bundled one is older than editable installs from pyproject need.
ensure_build_tools() {
  local ok
  ok="$(vpy - <<'EOF' 2>/dev/null || true
from importlib import metadata

try:
    major = int(metadata.version("setuptools").split(".")[0])
    metadata.version("wheel")
    print("yes" if major >= 64 else "no")
except metadata.PackageNotFoundError:
    print("no")
EOF
)"
  if [[ "$ok" != "yes" ]]; then
    run vpip install "setuptools>=64" wheel
  fi
}

# Records which torch the installed kaldifeat / fast_rnnt were built against.
build_stamp() { echo "$VENV/.icefall-lite-build"; }

build_compiled() {
  local torch_version cuda py_tag
  torch_version="$(dist_version torch)"
  local want="torch=$torch_version kaldifeat=$KALDIFEAT_VERSION fast_rnnt=$FAST_RNNT_VERSION"
  # Fast path without importing torch: same versions as when this step last succeeded.
  if [[ -f "$(build_stamp)" && "$(cat "$(build_stamp)")" == "$want" \
    && "$(dist_version kaldifeat)" == "$KALDIFEAT_VERSION" \
    && "$(dist_version fast_rnnt)" == "$FAST_RNNT_VERSION" ]]; then
    require_compiled=1
    step_note="kaldifeat $KALDIFEAT_VERSION and fast_rnnt $FAST_RNNT_VERSION already built for torch $torch_version"
    return 0
  fi
  if compiled_ok; then
    echo "$want" >"$(build_stamp)"
    require_compiled=1
    step_note="kaldifeat $(dist_version kaldifeat) and fast_rnnt $(dist_version fast_rnnt) already importable"
    return 0
  fi

  py_tag="$(vpy -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
  cuda="$(vpy -c 'import torch; print(torch.version.cuda or "")')"
  # The wheels link against one torch build, so the cache is per torch version.
  local wheels="${WHEEL_CACHE:-$CACHE_ROOT/wheels/torch-$torch_version-$py_tag}"
  mkdir -p "$wheels"

  local need=()
  have_wheel kaldifeat "$KALDIFEAT_VERSION" "$wheels" || need+=("kaldifeat==$KALDIFEAT_VERSION")
  have_wheel fast_rnnt "$FAST_RNNT_VERSION" "$wheels" || need+=("fast_rnnt==$FAST_RNNT_VERSION")

  if [[ ${#need[@]} -gt 0 ]]; then
    if [[ -n "$cuda" ]] && ! command -v nvcc >/dev/null 2>&1; then
      # Their CMake files stop when a CUDA torch finds no CUDA toolkit; the library falls back
      # to its own pure-PyTorch code, so this is a warning, not an error.
      echo "    WARNING: torch $torch_version is a CUDA $cuda build and nvcc is not on PATH;"
      echo "    kaldifeat / fast_rnnt cannot be built here (install the CUDA toolkit to build them)."
      step_note="skipped (CUDA torch without nvcc); built-in fallbacks will be used"
      return 0
    fi
    if ! command -v cmake >/dev/null 2>&1; then
      echo "setup.sh: cmake not found; install it with:  sudo apt-get install -y cmake" >&2
      return 1
    fi
    local src="$CACHE_ROOT/src"
    local pybind_dir="$src/pybind11-$PYBIND11_VERSION"
    mkdir -p "$src"
    if [[ ! -f "$pybind_dir/CMakeLists.txt" ]]; then
      # The pybind11 wheel has no CMake tree; both projects would otherwise download it.
      run vpip download --no-deps --no-binary pybind11 "pybind11==$PYBIND11_VERSION" -d "$src"
      run tar xzf "$src/pybind11-$PYBIND11_VERSION.tar.gz" -C "$src"
    fi
    local common="-DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=17 -DPYBIND11_FINDPYTHON=OFF"
    common+=" -DFETCHCONTENT_SOURCE_DIR_PYBIND11=$pybind_dir -DFETCHCONTENT_FULLY_DISCONNECTED=ON"
    ensure_build_tools
    echo "    building ${need[*]} (kaldifeat takes ~7 min on 2 idle cores)"
    KALDIFEAT_CMAKE_ARGS="$common" KALDIFEAT_MAKE_ARGS="-j$SETUP_JOBS" \
      FT_CMAKE_ARGS="$common -DFT_BUILD_TESTS=OFF -DFT_WITH_CUDA=OFF" FT_MAKE_ARGS="-j$SETUP_JOBS" \
      run vpip wheel --no-deps --no-build-isolation "${need[@]}" -w "$wheels"
    step_note="built ${need[*]} into $wheels; "
  else
    step_note="reused cached wheels in $wheels; "
  fi
  run vpip install --no-deps --no-index --find-links "$wheels" \
    "kaldifeat==$KALDIFEAT_VERSION" "fast_rnnt==$FAST_RNNT_VERSION"
  if ! compiled_ok; then
    echo "setup.sh: kaldifeat / fast_rnnt installed but do not import; remove $wheels and re-run" >&2
    vpy -c "import torch, kaldifeat, fast_rnnt" || true
    return 1
  fi
  echo "$want" >"$(build_stamp)"
  require_compiled=1
  step_note+="installed"
}

have_wheel() {
  compgen -G "$3/$1-$2-*.whl" >/dev/null
}

# ---------------------------------------------------------------------------------------------
# editable install of icefall_lite
# Where pip installed icefall-lite from (its PEP 610 record, "file:///..." for an editable
# install), read without importing the package. Run it from / so that a source tree's *.egg-info
# in the working directory does not answer instead.
editable_source() {
  vpy - <<'EOF' 2>/dev/null
import json
from importlib import metadata

info = json.loads(metadata.distribution("icefall-lite").read_text("direct_url.json") or "{}")
if info.get("dir_info", {}).get("editable"):
    print(info["url"])
EOF
}

install_editable() {
  local where
  where="$(cd / && editable_source)" || where=""
  local stamp="$VENV/.icefall-lite-editable.sha256"
  local want
  want="$(cat "$REPO_ROOT/setup.cfg" "$REPO_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [[ "$where" == "file://$REPO_ROOT" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    step_note="icefall_lite already installed in editable mode from $REPO_ROOT"
    return 0
  fi
  # --no-deps: the requirements step already installed (and pinned) the dependencies, and this
  # must not swap the user's torch. --no-build-isolation: no setuptools download.
  ensure_build_tools
  run vpip install --no-deps --no-build-isolation -e "$REPO_ROOT"
  echo "$want" >"$stamp"
  step_note="installed icefall_lite (editable) from $REPO_ROOT"
}

# ---------------------------------------------------------------------------------------------
# Imports what was installed; kaldifeat / fast_rnnt must import when the build step installed them.
require_compiled=0
check_imports() {
  REQUIRE_COMPILED=$require_compiled vpy - <<'EOF'
import importlib
import importlib.util
import os

import torch

print(f"    torch {torch.__version__} (CUDA available: {torch.cuda.is_available()})")
# The pure-Python requirements were checked through their metadata; import only icefall_lite and
# what links against torch. k2 / torchaudio are the user's own extras: report, never import.
importlib.import_module("icefall_lite")
for name in ["kaldifeat", "fast_rnnt"]:
    try:
        module = importlib.import_module(name)
        print(f"    {name}: {getattr(module, '__version__', 'available')}")
    except Exception as exc:  # optional unless this run built them
        print(f"    {name}: not available ({type(exc).__name__}: {exc})")
        if os.environ["REQUIRE_COMPILED"] == "1":
            raise SystemExit(f"setup.sh: {name} was built and installed but does not import")
for name in ["k2", "torchaudio"]:
    found = importlib.util.find_spec(name) is not None
    print(f"    {name}: {'installed' if found else 'not installed'} (optional)")
EOF
}

t_start=$SECONDS
step apt apt_packages
step venv make_venv
step requirements install_requirements
if [[ $do_build -eq 1 ]]; then
  step build build_compiled
else
  summary+=("$(printf '%-13s %4ds  %s' build 0 'skipped (--no-build)')")
fi
step editable install_editable
step check check_imports
trap - ERR

echo ""
echo "setup.sh finished in $((SECONDS - t_start))s (venv: $VENV)"
for line in "${summary[@]}"; do
  echo "  $line"
done
echo "Activate with:  . $VENV/bin/activate"
