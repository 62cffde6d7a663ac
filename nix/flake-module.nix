# flakeModules.default: a flake-parts module. A fleet repository that uses
# flake-parts imports it and gets the packages, apps and checks of its own
# hosts.nix (see docs/flake.md). A module is just a function, so this flake
# needs no flake-parts input.
{ mkFleet }:
{
  lib,
  flake-parts-lib,
  self,
  ...
}:
let
  inherit (lib) mkOption types;
in
{
  _file = ./flake-module.nix;

  options.perSystem = flake-parts-lib.mkPerSystemOption (_: {
    options.pve-fleet = {
      src = mkOption {
        type = types.raw;
        default = self;
        defaultText = lib.literalExpression "self";
        description = "The fleet repository that holds hosts.nix and hosts/.";
      };
      hostsFile = mkOption {
        type = types.either types.str types.path;
        default = "hosts.nix";
        description = "hosts.nix, relative to src or a path inside it.";
      };
    };
  });

  config.perSystem =
    { config, pkgs, ... }:
    let
      fleet = mkFleet {
        inherit pkgs;
        inherit (config.pve-fleet) src hostsFile;
      };
    in
    {
      inherit (fleet) packages checks;
      # Only type and program: older flake-parts has no apps.<name>.meta.
      apps = builtins.mapAttrs (_: app: { inherit (app) type program; }) fleet.apps;
    };
}
