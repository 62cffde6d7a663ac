{
  description = "pve-fleet: run a NixOS fleet on Proxmox VE from one hosts.nix";

  # rust-version 1.89 (File::lock): nixos-unstable, or a release from 25.11 on.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  # Thin glue: the Nix code that needs no nixpkgs lives in nix/lib.nix and
  # nix/fleet.nix, and the tests build it with a plain Nix (docs/flake.md).
  outputs =
    { self, nixpkgs }:
    let
      pure = import ./nix/lib.nix;
      mkFleet = args: import ./nix/mkfleet.nix args;
      forAllSystems =
        f:
        pure.genSystems (
          system:
          let
            pkgs = nixpkgs.legacyPackages.${system};
          in
          f {
            inherit pkgs;
            # This repository's own example fleet.
            fleet = mkFleet {
              inherit pkgs;
              src = self;
              hostsFile = "hosts.nix";
            };
          }
        );
    in
    {
      # For other fleet repositories: mkFleet { src = self; hostsFile = "hosts.nix"; pkgs; }
      # returns { packages, apps, checks } for their hosts.nix.
      lib = { inherit mkFleet; };
      flakeModules.default = import ./nix/flake-module.nix { inherit mkFleet; };

      packages = forAllSystems ({ fleet, ... }: fleet.packages);
      apps = forAllSystems ({ fleet, ... }: fleet.apps);
      checks = forAllSystems (
        { pkgs, fleet }:
        fleet.checks
        // import ./nix/dev-checks.nix {
          inherit pkgs;
          inherit (fleet.packages) pve;
        }
      );
      devShells = forAllSystems ({ pkgs, ... }: {
        default = import ./nix/devshell.nix { inherit pkgs; };
      });
      formatter = forAllSystems ({ pkgs, ... }: pkgs.nixfmt-tree);
    };
}
