# Checks of the tool itself (this repository only, not a consumer's fleet):
# its cargo tests and clippy.
{ pkgs, pve }:
{
  # The test suite: nothing in it needs the network; Nix, age and OpenSSH
  # run for real (see package.nix).
  cargo-test = pkgs.callPackage ./package.nix { doCheck = true; };

  clippy = pve.overrideAttrs (old: {
    pname = "pve-fleet-clippy";
    nativeBuildInputs = (old.nativeBuildInputs or [ ]) ++ [ pkgs.clippy ];
    buildPhase = ''
      runHook preBuild
      cargo clippy --offline --release --all-targets -- -D warnings
      runHook postBuild
    '';
    installPhase = ''
      mkdir -p "$out"
    '';
    doCheck = false;
    doInstallCheck = false;
  });
}
