# Shared helpers for the project's scripts (sourced, not run).

log() { printf '\n==> %s\n' "$*" >&2; }

# Installs a Debian package when its command is missing.
need_apt() { # need_apt <command> <package>
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2 (apt)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ ! -f /tmp/.chorus-apt-updated ]; then
    $sudo apt-get update -qq && touch /tmp/.chorus-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
}

need_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    log "installing Rust (rustup)"
    need_apt curl curl
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}

need_node() {
  need_apt node nodejs
  need_apt npm npm
}
