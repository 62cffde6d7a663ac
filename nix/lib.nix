# Pure helpers of the flake: builtins only, no nixpkgs. The tests evaluate
# them with a plain `nix-instantiate` (tests/flake_nix.rs).
let
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  hasSuffix =
    suffix: s:
    let
      ls = builtins.stringLength s;
      lx = builtins.stringLength suffix;
    in
    ls >= lx && builtins.substring (ls - lx) lx s == suffix;
  dropChars = n: s: builtins.substring n (builtins.stringLength s - n) s;
in
rec {
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  # { x86_64-linux = f "x86_64-linux"; aarch64-linux = ...; }
  genSystems =
    f:
    builtins.listToAttrs (
      map (system: {
        name = system;
        value = f system;
      }) systems
    );

  # Single-quotes a word for sh.
  escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s) + "'";

  # "/a/bin:/b/bin"
  makeBinPath = packages: builtins.concatStringsSep ":" (map (p: "${p}/bin") packages);

  # What never belongs in a copy of a fleet repository in the Nix store:
  # build output, VCS data, and OpenTofu state (state holds secrets and the
  # store is world-readable).
  ignoredNames = [
    ".git"
    "target"
    "result"
    ".direnv"
    ".state"
    ".terraform"
    ".pve.lock"
  ];
  keepInSource =
    path: _type:
    let
      name = baseNameOf (toString path);
    in
    !(
      builtins.elem name ignoredNames
      || hasPrefix "result-" name
      || hasSuffix ".tfstate" name
      || hasSuffix ".tfstate.backup" name
    );

  # A fleet repository (a path, or a flake's `self`) copied to the store
  # without the entries above.
  cleanSource =
    name: src:
    builtins.path {
      inherit name;
      # A path stays a path (no string round trip); `self` gives its outPath.
      path = if builtins.isAttrs src then src.outPath else src;
      filter = keepInSource;
    };

  # The hosts file as a path relative to `src`. `hostsFile` is either a
  # relative string ("hosts.nix", "fleet/hosts.nix") or a path inside `src`
  # (`./hosts.nix` next to a flake.nix whose `self` is `src`).
  hostsPath =
    { src, hostsFile }:
    let
      root = toString src;
      file = toString hostsFile;
      rel =
        if builtins.isString hostsFile && !hasPrefix "/" hostsFile then
          hostsFile
        else if hasPrefix (root + "/") file then
          dropChars (builtins.stringLength root + 1) file
        else
          throw "pve-fleet: hostsFile ${file} is not inside src ${root}; pass a path under src, or a path relative to it such as \"hosts.nix\"";
    in
    if builtins.pathExists "${root}/${rel}" then
      rel
    else
      throw "pve-fleet: hostsFile \"${rel}\" does not exist in src ${root}";

  # Every app: which program it runs and the subcommand in front of the
  # user's arguments. Apps run in the user's working copy (they change
  # hosts.nix, vms/tofu/.state, secrets/), so they find ./hosts.nix there,
  # as `pve` does, instead of using a copy in the store.
  appSpecs = {
    pve = {
      exe = "pve";
      args = [ ];
      description = "pve: check, render and run the workflows of the fleet in ./hosts.nix";
    };
    proxmox-ops = {
      exe = "proxmox-ops";
      args = [ ];
      description = "proxmox-ops: typed qm/pvesh operations over SSH";
    };
    tofu-plan = {
      exe = "pve";
      args = [ "plan" ];
      description = "pve plan: render the OpenTofu config and save a plan";
    };
    tofu-apply = {
      exe = "pve";
      args = [ "apply" ];
      description = "pve apply: apply the saved plan";
    };
    tofu-output = {
      exe = "pve";
      args = [ "output" ];
      description = "pve output: the OpenTofu outputs (VM IPs, ...)";
    };
    tofu-destroy = {
      exe = "pve";
      args = [ "destroy" ];
      description = "pve destroy: plan and apply the removal of VMs";
    };
    new-vm = {
      exe = "pve";
      args = [ "new" ];
      description = "pve new: add a VM to hosts.nix and create it";
    };
    post-provision-vm = {
      exe = "pve";
      args = [ "integrate" ];
      description = "pve integrate: hardware config, nixos-rebuild, host key, sops";
    };
  };

  # The body of an app's wrapper script (the shebang comes from
  # writeShellScriptBin): the runtime tools first on PATH, the user's PATH
  # after them (their ssh ProxyCommand helpers keep working).
  wrapperText =
    {
      pve,
      tools,
      spec,
    }:
    ''
      PATH=${escapeShellArg (makeBinPath tools)}''${PATH:+:$PATH}
      export PATH
      exec ${
        builtins.concatStringsSep " " (map escapeShellArg ([ "${pve}/bin/${spec.exe}" ] ++ spec.args))
      } "$@"
    '';

  # The `apps` output for a pve package and its runtime tools.
  # writeShellScriptBin: name -> text -> derivation with bin/<name>.
  mkApps =
    {
      pve,
      tools,
      writeShellScriptBin,
    }:
    builtins.mapAttrs (
      name: spec:
      let
        script = writeShellScriptBin name (wrapperText { inherit pve tools spec; });
      in
      {
        type = "app";
        program = "${script}/bin/${name}";
        meta.description = spec.description;
      }
    ) appSpecs;
}
