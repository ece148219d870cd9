#!/bin/sh
# The image's entry point. With no arguments, or only flags, it serves: the documents mounted
# at /docs, or the bundled Project Nexus hub when nothing is mounted there; the flags go to
# `nexus serve`. Any other first argument is a nexus command: `docker run nexus search "..."`.
set -eu

case "${1:-}" in
    "" | -*) ;;
    *) exec nexus "$@" ;;
esac

corpus=/usr/share/nexus/corpus
if [ -n "$(ls -A /docs 2>/dev/null)" ]; then
    corpus=/docs
else
    echo "nexus: nothing is mounted at /docs; serving the bundled Project Nexus hub" >&2
fi
exec nexus serve --corpus "$corpus" --host 0.0.0.0 --port 7860 "$@"
