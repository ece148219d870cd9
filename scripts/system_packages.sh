#!/usr/bin/env sh
# Make sure the Debian packages named as arguments are installed: install the missing ones when
# running as root with apt-get at hand, otherwise stop and say exactly what to install.
set -eu
missing=""
for package in "$@"; do
    if ! dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $package"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    exit 0
fi
echo "The test suite needs these Debian packages:$missing" >&2
echo "Install them with:  sudo apt-get install -y$missing" >&2
exit 1
