#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what the tests
# need (redis-server, nginx, openssl, chromium and python3-venv from Debian's
# packages — so on Debian it needs root or sudo —, kubernetes-validate from
# PyPI into the project's virtualenv .venv/, playwright-core from npm), checks
# format and lints, builds the binaries the integration and browser suites
# start as real processes, then runs both suites and ends with the names of
# the failed tests and one closing line.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# redis-cli joins the test's Redis Cluster (Debian ships it in redis-tools).
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# Debian's python3 makes virtualenvs only with python3-venv (ensurepip).
[ -x .venv/bin/python3 ] || python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
# The manifest tests run kubernetes-validate from .venv (they render the
# kustomizations themselves: no kubectl).
[ -x .venv/bin/python3 ] || python3 -m venv .venv
.venv/bin/python3 -c 'import kubernetes_validate' >/dev/null 2>&1 ||
  .venv/bin/python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate
for tool in redis-server redis-cli nginx openssl cargo chromium node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is still missing" >&2; exit 1; }
done
.venv/bin/python3 -c 'import kubernetes_validate' ||
  { echo "error: kubernetes-validate is still missing from .venv" >&2; exit 1; }

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The integration tests run these binaries as separate processes.
cargo build --workspace --bins --locked
log=$(mktemp)
browser_log=$(mktemp)
trap 'rm -f "$log" "$browser_log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?

# The web client, in real headless Chromium against real processes.
npm ci --prefix tests/browser --no-audit --no-fund
node --test --test-concurrency=1 tests/browser/*.test.mjs 2>&1 | tee "$browser_log" || status=$?

# One closing line over every test binary and the browser suite (cargo
# prints one line per binary, the last of which is often an empty doc-test
# run).
passed=$(grep 'test result:' "$log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep 'test result:' "$log" | grep -oE '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
passed=$((passed + $(awk '/^# pass /{n=$3} END{print n+0}' "$browser_log")))
failed=$((failed + $(awk '/^# fail /{n=$3} END{print n+0}' "$browser_log")))
# The failed tests' names, last, so they are not buried under the browser
# suite's output: cargo's `test NAME ... FAILED` lines and node's
# `not ok N - NAME` (a subtest's parent is listed too).
failures=$(
  {
    sed -nE 's/^test (.+) \.\.\. FAILED$/  \1/p' "$log"
    sed -nE 's/^( *)not ok [0-9]+ - (.*)$/  browser: \1\2/p' "$browser_log"
  } || true
)
if [ -n "$failures" ]; then
  echo "failed:"
  echo "$failures"
fi
echo "tests: $passed passed, $failed failed"
exit "$status"
