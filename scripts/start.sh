#!/usr/bin/env bash
# npm start: check the port first (so a busy port is known before minutes of
# set-up and build), set up what is missing, build, then serve the console.
# Usage: npm start [-- --port N]   (or PORT=N npm start)
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/serve.js --check-port "$@"
bash scripts/setup.sh
bash scripts/build.sh
# exec: the server takes this shell's place, so the signal npm forwards when
# it is stopped reaches the server itself; CAPTOKEN_PARENT_PID lets the
# server stop even when npm is killed outright.
CAPTOKEN_PARENT_PID=$PPID exec node scripts/serve.js "$@"
