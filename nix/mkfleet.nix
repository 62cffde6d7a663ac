# lib.mkFleet: the packages, apps and checks of one fleet repository, for
# one nixpkgs. Thin glue between nixpkgs and the pure parts (lib.nix,
# fleet.nix).
{
  # The fleet repository: a flake's `self`, or a path.
  src,
  # hosts.nix: relative to src ("hosts.nix") or a path inside src.
  hostsFile ? "hosts.nix",
  # nixpkgs for one system: nixpkgs.legacyPackages.${system}.
  pkgs,
  # The tool; built from this repository by default.
  pve ? pkgs.callPackage ./package.nix { },
}:
let
  lib = import ./lib.nix;
  fleet = import ./fleet.nix {
    pve = "${pve}/bin/pve";
    inherit src hostsFile;
    inherit (pkgs) runCommand;
  };
in
{
  packages = {
    default = pve;
    inherit pve;
    inherit (fleet) tofu-config;
  };

  # Each app is `pve <subcommand>` (or proxmox-ops) with the runtime tools
  # on PATH.
  apps = lib.mkApps {
    inherit pve;
    tools = [
      pkgs.opentofu
      pkgs.openssh
      pkgs.sops
      pkgs.nixos-rebuild
    ];
    inherit (pkgs) writeShellScriptBin;
  };

  inherit (fleet) checks;
}
