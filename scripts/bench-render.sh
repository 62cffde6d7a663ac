#!/usr/bin/env bash
# Measures `pve render` (all outputs) on a generated fleet against
# `nix-instantiate --eval --strict --json` of the same hosts.nix, and
# `pve eval` (our evaluator alone). Runs each once; not part of CI.
# Usage: scripts/bench-render.sh [HOSTS=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
python3 scripts/gen-fleet.py "$n" "$dir"
pve="${PVE:-target/release/pve}"
fmt='%e s wall, %U s user, %S s sys, %M KB peak RSS'
echo "fleet: $n hosts, $(wc -c <"$dir/hosts.nix") bytes of hosts.nix"
/usr/bin/time -f "pve render (all):      $fmt" "$pve" -f "$dir/hosts.nix" render --out-dir "$dir/out" 2>&1 | grep -v '^wrote '
/usr/bin/time -f "pve eval:              $fmt" "$pve" -f "$dir/hosts.nix" eval 2>&1 >/dev/null
/usr/bin/time -f "nix-instantiate --eval --strict --json: $fmt" nix-instantiate --eval --strict --json "$dir/hosts.nix" 2>&1 >/dev/null
du -b "$dir/out/vms/tofu/config.tf.json" "$dir/out/secrets/.sops.yaml" "$dir/out/vms/known_hosts"
