# STAND-IN for the nixpkgs flake input (nixpkgs cannot be fetched in the
# tests). It provides exactly what flake.nix and nix/*.nix touch, and builds
# real derivations with a plain Nix where it can:
#   - rustPlatform.buildRustPackage installs the cargo-built binaries given
#     here (pveBin, proxmoxOpsBin) instead of compiling, and keeps the
#     arguments it got in `stubArgs` so the tests can inspect them;
#   - runCommand / writeShellScriptBin are plain derivations with builder
#     /bin/sh and the host's PATH (`path`: coreutils, as stdenv has);
#   - every tool (opentofu, openssh, ...) is a package whose bin/ holds
#     stand-in scripts that print "stub <name>" and their arguments.
{
  pveBin,
  proxmoxOpsBin,
  path ? "/usr/bin:/bin",
}:
let
  mkPkgs =
    system:
    let
      runCommand =
        name: env: script:
        derivation (
          env
          // {
            inherit name system;
            builder = "/bin/sh";
            args = [
              "-c"
              script
            ];
            PATH = path;
          }
        );

      tool =
        name: exes:
        runCommand "stub-${name}" { inherit exes; } ''
          set -eu
          mkdir -p "$out/bin"
          for e in $exes; do
            printf '#!/bin/sh\necho "stub %s $*"\n' "$e" > "$out/bin/$e"
            chmod +x "$out/bin/$e"
          done
        '';

      # STAND-IN for nixpkgs' installShellFiles setup hook: the two
      # functions with the destinations nixpkgs uses (man pages are not
      # gzipped here; nixpkgs compresses them in fixupPhase).
      installShellFilesHook = ''
        installManPage() {
          for f in "$@"; do
            s="''${f##*.}"
            mkdir -p "$out/share/man/man$s"
            cp "$f" "$out/share/man/man$s/"
          done
        }
        installShellCompletion() {
          cmd=
          while [ $# -gt 0 ]; do
            case "$1" in
              --cmd) cmd="$2"; shift 2 ;;
              --bash) d="$out/share/bash-completion/completions/$cmd.bash"; mkdir -p "''${d%/*}"; cp "$2" "$d"; shift 2 ;;
              --zsh) d="$out/share/zsh/site-functions/_$cmd"; mkdir -p "''${d%/*}"; cp "$2" "$d"; shift 2 ;;
              --fish) d="$out/share/fish/vendor_completions.d/$cmd.fish"; mkdir -p "''${d%/*}"; cp "$2" "$d"; shift 2 ;;
              *) echo "installShellCompletion stand-in: unsupported $1" >&2; exit 1 ;;
            esac
          done
        }
      '';

      withOverride =
        drv: args:
        drv
        // {
          stubArgs = args;
          overrideAttrs =
            f:
            let
              new = args // (f args);
            in
            withOverride (runCommand "stub-${new.pname}" { } "echo '${new.buildPhase}' > $out") new;
        };

      pkgs = {
        inherit system runCommand;
        stdenv.hostPlatform.system = system;
        lib = {
          licenses.mit = "MIT";
          platforms.linux = [
            "x86_64-linux"
            "aarch64-linux"
          ];
        };

        callPackage =
          f: overrides:
          let
            fn = if builtins.isFunction f then f else import f;
          in
          fn (builtins.intersectAttrs (builtins.functionArgs fn) pkgs // overrides);

        rustPlatform.buildRustPackage =
          args:
          withOverride (runCommand "stub-${args.pname}-${args.version}" { inherit pveBin proxmoxOpsBin; } ''
            set -eu
            mkdir -p "$out/bin"
            cp "$pveBin" "$out/bin/pve"
            cp "$proxmoxOpsBin" "$out/bin/proxmox-ops"
            cd "$(mktemp -d)"
            ${installShellFilesHook}
            ${args.postInstall or ""}
          '') args;

        writeShellScriptBin =
          name: text:
          runCommand name { inherit text; } ''
            set -eu
            mkdir -p "$out/bin"
            printf '#!/bin/sh\n%s' "$text" > "$out/bin/${name}"
            chmod +x "$out/bin/${name}"
          '';

        installShellFiles = runCommand "stub-installShellFiles" { } "mkdir $out";
        mkShell = args: (runCommand "stub-shell" { } "echo > $out") // { stubArgs = args; };

        opentofu = tool "opentofu" [ "tofu" ];
        openssh = tool "openssh" [
          "ssh"
          "ssh-keygen"
          "ssh-keyscan"
          "sshd"
        ];
        sops = tool "sops" [ "sops" ];
        nixos-rebuild = tool "nixos-rebuild" [ "nixos-rebuild" ];
        nix = tool "nix" [
          "nix"
          "nix-instantiate"
          "nix-build"
          "nix-store"
        ];
        age = tool "age" [
          "age"
          "age-keygen"
        ];
        python3 = tool "python3" [ "python3" ];
        # The rest of cargo-test's nativeCheckInputs (nix/package.nix), with
        # the programs tests/it/support/tools.rs expects from each.
        git = tool "git" [ "git" ];
        util-linux = tool "util-linux" [
          "script"
          "setpriv"
          "mount"
          "umount"
        ];
        procps = tool "procps" [
          "kill"
          "pgrep"
        ];
        bash = tool "bash" [
          "bash"
          "sh"
        ];
        coreutils = tool "coreutils" [
          "id"
          "cat"
          "readlink"
          "true"
          "mktemp"
          "rm"
          "tr"
        ];
        man = tool "man" [ "man" ];
        nss_wrapper = tool "nss_wrapper" [ ];
        postgresql = tool "postgresql" [
          "initdb"
          "pg_ctl"
          "postgres"
        ];
        ssh-to-age = tool "ssh-to-age" [ "ssh-to-age" ];
        cargo = tool "cargo" [ "cargo" ];
        rustc = tool "rustc" [ "rustc" ];
        clippy = tool "clippy" [ "cargo-clippy" ];
        rustfmt = tool "rustfmt" [ "rustfmt" ];
        nixfmt-tree = tool "nixfmt-tree" [ "treefmt" ];
      };
    in
    pkgs;
in
{
  # The nixpkgs flake's lib, as far as the consumer flake in docs/flake.md
  # uses it.
  lib.genAttrs =
    names: f:
    builtins.listToAttrs (
      map (n: {
        name = n;
        value = f n;
      }) names
    );

  legacyPackages = {
    x86_64-linux = mkPkgs "x86_64-linux";
    aarch64-linux = mkPkgs "aarch64-linux";
  };
}
