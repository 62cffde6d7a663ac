# A VM that pve never changes (readonly in hosts.nix).
{ ... }:
{
  imports = [ ./hardware-configuration.nix ];
  services.qemuGuest.enable = true;
  services.openssh.enable = true;
  system.stateVersion = "25.05";
}
