# An imported VM (UEFI, q35, SCSI): not cloned from the template, so it
# keeps systemd-boot and its own disk layout.
{ ... }:
{
  imports = [ ./hardware-configuration.nix ];
  boot.loader.systemd-boot.enable = true;
  boot.loader.efi.canTouchEfiVariables = true;
  services.qemuGuest.enable = true;
  services.openssh.enable = true;
  system.stateVersion = "25.05";
}
