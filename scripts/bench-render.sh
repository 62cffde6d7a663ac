#!/usr/bin/env bash
# `pve render` (all files) against `nix-instantiate --eval --strict --json`
# of the same hosts.nix, for every fleet shape at 1,000 and 10,000 hosts:
# the least any Nix-based renderer must do. See scripts/bench-eval --help.
#
#   scripts/bench-render.sh --quick
#   scripts/bench-render.sh --shapes classic --sizes 10000
exec "$(dirname "$0")/bench-eval" --command render "$@"
