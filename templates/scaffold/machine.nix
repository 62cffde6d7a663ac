# {{ name }}: NixOS configuration of a machine that is not a VM (a laptop or
# a desktop), created by `pve scaffold {{ name }}`. Generate its
# hardware-configuration.nix on the machine itself:
#   nixos-generate-config --show-hardware-config > hardware-configuration.nix
{ pkgs, ... }:
{
  imports = [
    ./hardware-configuration.nix
  ];

  # UEFI with systemd-boot, as most laptops and desktops boot.
  boot.loader = {
    systemd-boot.enable = true;
    efi.canTouchEfiVariables = true;
  };

  services.openssh.enable = true;

  environment.systemPackages = with pkgs; [ git vim ];

  system.stateVersion = "{{ state_version }}";
}
