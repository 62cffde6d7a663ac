# A laptop in the fleet: secrets and SSH, no Proxmox.
{ ... }:
{
  services.openssh.enable = true;
  system.stateVersion = "25.05";
}
