# Shared set-up for kubeforge's scripts: the Debian packages and the Rust toolchain they need.
# Sourced, not run. Idempotent: installs only what is missing.

# Debian packages: the lab (debootstrap, systemd-nspawn, dnsmasq, busybox httpd, dpkg-dev),
# the SSH client, openssl (certificate tests), and a C toolchain for crates that build C.
KUBEFORGE_PACKAGES=(
  debootstrap systemd-container dpkg-dev dnsmasq-base busybox iproute2 openssh-client
  ca-certificates openssl curl gcc libc6-dev pkg-config
)

ensure_packages() {
  local missing=()
  local p
  for p in "${KUBEFORGE_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

ensure_cargo() {
  if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust (https://rustup.rs) and run this again" >&2
    exit 2
  fi
}

# Re-run as root when not root: the lab creates bridges, mounts and containers.
ensure_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "==> root is needed (lab hosts are containers); re-running with sudo"
    exec sudo -E --preserve-env=PATH "$@"
  fi
}
