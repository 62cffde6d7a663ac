# The example fleet: every machine, in one file. `pve check` validates it,
# `pve render` turns it into vms/tofu/config.tf.json and secrets/.sops.yaml.
let
  # Keys that may log in to every machine.
  adminKeys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji admin@framework"
  ];
in
{
  _proxmox = {
    host = "192.168.1.12"; # API + SSH address of the Proxmox host
    node = "prom"; # default node
    defaultStorage = "nvmeprom";
    templateVmid = 9003; # NixOS template: SeaBIOS, virtio0, GRUB
    insecure = true; # self-signed certificate on :8006
  };

  _sops = {
    # Recipients that can always decrypt every secret.
    admins = {
      master = "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452";
    };
  };

  # A VM cloned from the NixOS template, with its own configuration.
  sandbox = {
    configurationFile = ./hosts/sandbox/configuration.nix;
    homeFile = ./hosts/sandbox/home.nix;
    hostname = "sandbox";
    sshAlias = "sbx";
    user = "admin";
    publicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHg+0cl2eSRJP0uMoScnKY9J6ZvYERwjc843qO2BNqfB";
    authorizedKeys = adminKeys;
    proxmox = {
      vmid = 111;
      cores = 4;
      memory = 8192;
      disk = "64G";
      tags = [ "sandbox" "nixos" ];
      description = "Isolated sandbox VM (no LAN access)";
    };
  };

  # A VM that existed before the template: imported, UEFI, SCSI disk and a
  # host folder shared in with virtiofs.
  igpu = {
    configurationFile = ./hosts/igpu/configuration.nix;
    homeFile = ./hosts/igpu/home.nix;
    hostname = "igpu";
    sshAlias = "igpu";
    publicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPucrnfLpTjCzItnNPvGJ0iqQs2+iTyTXZH5pCBpuvDp";
    authorizedKeys = adminKeys;
    proxmox = {
      vmid = 109;
      cores = 8;
      memory = 16384;
      disk = "passthrough"; # the GPU box boots from a passed-through NVMe
      storage = "nvmeprom";
      cloneFromTemplate = false;
      bios = "ovmf";
      machine = "q35";
      diskInterface = "scsi0";
      ignoreInit = true;
      ignoreChangesExtra = [ "hostpci" "disk" ];
      virtiofs = [
        { mapping = "containers"; cache = "always"; }
        { mapping = "media"; direct_io = true; }
      ];
    };
  };

  # A VM the tool must never change: listed so the fleet knows its VMID.
  doc2 = {
    configurationFile = ./hosts/doc2/configuration.nix;
    homeFile = ./hosts/doc2/home.nix;
    hostname = "doc2";
    sshAlias = "doc2";
    publicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPv9MVIv00FafaGR/mPE3nW565bycshuwxlh3vhT+bZp";
    authorizedKeys = adminKeys;
    proxmox = {
      vmid = 104;
      cores = 2;
      memory = 4096;
      readonly = true;
    };
  };

  # A laptop: part of the fleet (secrets, SSH), not a VM.
  framework = {
    configurationFile = ./hosts/framework/configuration.nix;
    homeFile = ./hosts/framework/home.nix;
    hostname = "framework";
    sshAlias = "fw";
    publicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP0atvH47232nLwq1b4P7583cj+WGJYHU4vx/4lgtNgl";
    authorizedKeys = adminKeys;
  };
}
