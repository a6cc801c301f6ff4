# Sourced by scripts/serve, scripts/test, scripts/sync and scripts/lock. Python packages come
# from the committed locks in requirements/ (scripts/lock writes them), installed by uv: one
# universal lock per use, with hashes, for every Python version browsergrid supports.
# uv itself is installed, hash-checked, into .tools/uv by pip (python3 -m venv).
UV=.tools/uv/bin/uv
UV_VERSION=$(sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements/uv.txt)
export UV_PYTHON_DOWNLOADS=never  # the machine's python3, never a Python downloaded by uv
export UV_NO_PROGRESS=1
# Write each installed module's bytecode at install time, as pip does (uv does not by
# default): without it every coordinator or worker process compiles its dependencies from
# source at start, which took the test suite from 11 to 20 minutes.
export UV_COMPILE_BYTECODE=1

# ensure_uv: the locked uv in .tools/uv (installed once, again when the lock moves it).
ensure_uv() {
  if [ -x "$UV" ] && [ "$("$UV" --version | cut -d' ' -f2)" = "$UV_VERSION" ]; then
    return 0
  fi
  rm -rf .tools/uv
  python3 -m venv .tools/uv
  .tools/uv/bin/python -m pip install -q --disable-pip-version-check --require-hashes \
    -r requirements/uv.txt
}

# install_locked VENV LOCK: VENV (made with python3 -m venv when missing) holds exactly the
# packages LOCK names, at its versions and hashes, then browsergrid itself, editable.
install_locked() {
  local venv=$1 lock=$2
  ensure_uv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$UV" pip sync -q --python "$venv/bin/python" --require-hashes "$lock"
  "$UV" pip install -q --python "$venv/bin/python" --no-deps --no-build-isolation -e .
}
