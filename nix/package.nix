# The pve and proxmox-ops binaries, built from Cargo.lock (no network in the
# build). The paths of the programs pve runs are baked in at build time
# (src/runner.rs reads them with option_env!); PATH is the fallback when a
# baked path does not exist.
{
  lib,
  rustPlatform,
  openssh,
  opentofu,
  sops,
  nixos-rebuild,
  nix,
  age,
  python3,
  git,
  util-linux,
  procps,
  bash,
  coreutils,
  man,
  postgresql,
  nss_wrapper,
  installShellFiles,
  # true for the `cargo-test` check; the package itself skips the tests so
  # `nix run` never waits for them.
  doCheck ? false,
}:
let
  pure = import ./lib.nix;
  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);
in
rustPlatform.buildRustPackage {
  pname = if doCheck then "pve-fleet-tests" else "pve-fleet";
  inherit (cargoToml.package) version;

  # The whole repository (src/, templates/ for askama, tests/, the example
  # fleet), without target/, .git and OpenTofu state.
  src = pure.cleanSource "pve-fleet-source" ../.;
  cargoLock.lockFile = ../Cargo.lock;

  env = {
    PVE_SSH = "${openssh}/bin/ssh";
    PVE_SSH_KEYGEN = "${openssh}/bin/ssh-keygen";
    PVE_TOFU = "${opentofu}/bin/tofu";
    PVE_SOPS = "${sops}/bin/sops";
    PVE_NIXOS_REBUILD = "${nixos-rebuild}/bin/nixos-rebuild";
    PVE_NIX = "${nix}/bin/nix";
  };

  # Shell completions and manual pages, made by the built binary itself
  # (`pve completions`, `pve man`) from the same clap tree as --help.
  # Running it here needs a native build (not a cross build).
  nativeBuildInputs = [ installShellFiles ];
  postInstall = ''
    "$out/bin/pve" completions bash > pve.bash
    "$out/bin/pve" completions zsh > _pve
    "$out/bin/pve" completions fish > pve.fish
    installShellCompletion --cmd pve --bash pve.bash --zsh _pve --fish pve.fish
    "$out/bin/pve" man --out man
    installManPage man/*.1
  '';

  inherit doCheck;
  # Every program the tests run, and nothing from /usr (the sandbox has
  # none): the table in tests/it/support/tools.rs says which program comes
  # from which package, and tests/it/tools_table.rs checks this list
  # against it. Nix (the evaluator oracle, private stores under $TMPDIR),
  # age, OpenSSH (client and sshd), python3 (stand-ins, the simulated
  # Proxmox host), git, util-linux (script, setpriv, mount), procps (kill,
  # pgrep), bash, coreutils, man, PostgreSQL (the pg state backend test;
  # terraform is unfree, so the tests that need it print SKIP here).
  nativeCheckInputs = [
    nix
    age
    openssh
    python3
    git
    util-linux
    procps
    bash
    coreutils
    man
    postgresql
  ];
  # The sandbox's /etc/passwd gives the build user the login shell
  # /noshell, and sshd refuses a user whose shell does not exist: the test
  # sshd (the simulated Proxmox host, the test VMs) read a copy with bash's
  # sh instead, through nss_wrapper.
  preCheck = ''
    export HOME="$TMPDIR"
    sed 's|:/noshell$|:${bash}/bin/sh|' /etc/passwd > "$TMPDIR/passwd"
    export LD_PRELOAD=${nss_wrapper}/lib/libnss_wrapper.so
    export NSS_WRAPPER_PASSWD="$TMPDIR/passwd" NSS_WRAPPER_GROUP=/etc/group
  '';

  meta = {
    description = "Run a NixOS fleet on Proxmox VE from one hosts.nix";
    license = lib.licenses.mit;
    mainProgram = "pve";
    platforms = lib.platforms.linux;
  };
}
