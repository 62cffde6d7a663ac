# `nix develop`: the Rust toolchain, the programs pve runs, and the tools
# for secrets and Nix.
{ pkgs }:
pkgs.mkShell {
  packages = [
    pkgs.cargo
    pkgs.rustc
    pkgs.clippy
    pkgs.rustfmt
    pkgs.opentofu
    pkgs.openssh
    pkgs.sops
    pkgs.age
    pkgs.ssh-to-age
    pkgs.nix
    pkgs.nixos-rebuild
    pkgs.nixfmt-tree
  ];
}
