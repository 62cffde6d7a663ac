# The derivations that follow from one fleet's hosts.nix: its checks and
# the rendered OpenTofu config. Pure apart from `runCommand`, which the
# caller brings:
#   - the flake passes nixpkgs' `runCommand` (stdenv: coreutils on PATH);
#   - the tests pass a plain `derivation` with builder /bin/sh and the
#     host's /usr/bin:/bin on PATH (tests/flake_nix.rs).
# The scripts use only `pve`, sh and mkdir/cp.
{
  # The pve executable: "${pkg}/bin/pve", or a path to a cargo-built binary.
  pve,
  # The fleet repository: a path, or a flake's `self`.
  src,
  # hosts.nix: relative to src ("hosts.nix") or a path inside src.
  hostsFile ? "hosts.nix",
  # name -> env attrs -> script -> derivation (nixpkgs' runCommand).
  runCommand,
}:
let
  lib = import ./lib.nix;
  rel = lib.hostsPath { inherit src hostsFile; };
  fleet = lib.cleanSource "fleet-source" src;
  hosts = lib.escapeShellArg "${fleet}/${rel}";
  # Interpolation copies a path (a cargo-built binary) into the store.
  exe = lib.escapeShellArg "${pve}";
in
{
  checks = {
    # `pve check`: every host spec, the files it points at, the template
    # rules. Fails the build with pve's diagnostics in the log.
    host-specs = runCommand "pve-check-host-specs" { } ''
      set -eu
      ${exe} -f ${hosts} check
      echo "pve check: ${rel} passed" > "$out"
    '';

    # `pve render --check`: the committed generated files
    # (vms/tofu/config.tf.json, secrets/.sops.yaml, known_hosts) are what
    # hosts.nix renders to today.
    generated-files-in-sync = runCommand "pve-check-generated-files" { } ''
      set -eu
      ${exe} -f ${hosts} render --check
      echo "pve render --check: generated files of ${rel} are in sync" > "$out"
    '';
  };

  # `nix build .#tofu-config`: result/config.tf.json (and anything else
  # `pve render tofu` writes to vms/tofu/), rendered from hosts.nix.
  tofu-config = runCommand "tofu-config" { } ''
    set -eu
    ${exe} -f ${hosts} render tofu --out-dir "$NIX_BUILD_TOP/render"
    mkdir -p "$out"
    cp -R "$NIX_BUILD_TOP/render/vms/tofu/." "$out/"
  '';
}
