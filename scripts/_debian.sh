# Sourced by scripts/serve and scripts/test. install_missing COMMAND:PACKAGE...: installs,
# with apt-get (sudo when not root), each package whose command is missing; "venv" stands
# for Python's venv and ensurepip modules (Debian's python3-venv).
install_missing() {
  local missing=() pair command package
  for pair in "$@"; do
    command=${pair%%:*}
    package=${pair#*:}
    if [ "$command" = venv ]; then
      python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=("$package")
    else
      command -v "$command" >/dev/null 2>&1 || missing+=("$package")
    fi
  done
  ((${#missing[@]})) || return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "$(basename "$0"): installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}
