#!/usr/bin/env bash
# Install what bootaudit and its tests need on a Debian machine (run as root, or it uses sudo):
# QEMU's x86 system emulator, OVMF (UEFI boots), xorriso (the tests build ISOs), and the image tooling that
# fixtures/build-images.sh uses. Idempotent: installs only what is missing.
#
# On Debian 12 QEMU comes from bookworm-backports: the machines we run on carry qemu-utils 10
# from backports, which the bookworm qemu-system-x86 (7.2) cannot be installed beside.
set -euo pipefail

SUDO=
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: run as root (or install sudo)" >&2; exit 1; }
    SUDO=sudo
fi

packages=(qemu-system-x86 qemu-utils xorriso debootstrap squashfs-tools isolinux syslinux-common
          grub-pc-bin grub-efi-amd64-bin grub-common mtools dosfstools util-linux ovmf
          chromium nix-bin)
# The tests' JUnit consumers run on node and in a Python venv: the distribution's, unless the
# machine has its own already.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
command -v python3 >/dev/null && python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3 python3-venv)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "setup: all packages present" >&2
else
    . /etc/os-release
    backports=()
    if [[ ${VERSION_CODENAME:-} == bookworm ]]; then
        list=/etc/apt/sources.list.d/bookworm-backports.list
        if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
            echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee "$list" >/dev/null
        fi
        backports=(-t bookworm-backports)
    fi
    echo "setup: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    # QEMU first, from backports where needed; the rest from the release.
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${backports[@]}" \
        qemu-system-x86 qemu-utils >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found: install a stable Rust toolchain (rustup)" >&2; exit 1; }
qemu-system-x86_64 --version | head -1 >&2

# cargo-fuzz, from crates.io, for scripts/fuzz-smoke.sh (docs/fuzzing.md); the fuzz targets
# build with the nightly toolchain, which rustup has to provide.
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "setup: installing cargo-fuzz" >&2
    cargo install --locked --quiet cargo-fuzz
fi
cargo +nightly --version >/dev/null 2>&1 ||
    echo "setup: no nightly Rust toolchain: scripts/fuzz-smoke.sh needs one (rustup toolchain install nightly)" >&2

# The JUnit consumers the tests read junit.xml with, pinned, from the registries, into .tools/
# (ignored by git): junitparser (PyPI) and junit2json (npm).
tools="$(cd "$(dirname "$0")/.." && pwd)/.tools"
if [[ ! -x $tools/venv/bin/python ]] || ! "$tools/venv/bin/python" -c 'import junitparser' 2>/dev/null; then
    echo "setup: installing junitparser into $tools/venv" >&2
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q --disable-pip-version-check 'junitparser==5.0.3'
fi
if [[ ! -x $tools/node/node_modules/.bin/junit2json ]]; then
    echo "setup: installing junit2json into $tools/node" >&2
    mkdir -p "$tools/node"
    npm install -s --no-audit --no-fund --prefix "$tools/node" 'junit2json@3.1.14' >/dev/null
fi
