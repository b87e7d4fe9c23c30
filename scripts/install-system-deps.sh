#!/usr/bin/env bash
# Installs the system packages Sartoris's fleet, demo and tests need (Debian/Ubuntu), only those missing.
set -euo pipefail
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
{ command -v ssh && command -v ssh-keygen; } >/dev/null 2>&1 || missing+=(openssh-client)
command -v git >/dev/null 2>&1 || missing+=(git)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
# Debian splits venv's pip out per Python: python3-venv for python3, python3.11-venv for python3.11
"${PYTHON:-python3}" -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=("$(basename "${PYTHON:-python3}")-venv")
if ((${#missing[@]} == 0)); then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-system-deps: need root to install: ${missing[*]}" >&2
    exit 1
fi
echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
