{
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    pve-fleet.url = "github:your-org/pve-fleet";
    pve-fleet.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs =
    { self, nixpkgs, pve-fleet }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems =
        f:
        nixpkgs.lib.genAttrs systems (
          system:
          f (
            pve-fleet.lib.mkFleet {
              src = self;
              hostsFile = "hosts.nix";
              pkgs = nixpkgs.legacyPackages.${system};
            }
          )
        );
    in
    {
      packages = forAllSystems (fleet: fleet.packages);
      apps = forAllSystems (fleet: fleet.apps);
      checks = forAllSystems (fleet: fleet.checks);
      # nixosConfigurations = ...;  your hosts, as before
    };
}
