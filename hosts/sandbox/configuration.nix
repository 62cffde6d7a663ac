# A custom VM: the vm_base pattern plus an isolation firewall.
{ pkgs, ... }:
{
  imports = [
    ./hardware-configuration.nix
  ];

  boot.loader = {
    systemd-boot.enable = false;
    efi.canTouchEfiVariables = false;
    grub = {
      enable = true;
      devices = [ "nodev" ];
    };
  };

  services.qemuGuest.enable = true;
  services.openssh.enable = true;

  # Isolation: the sandbox reaches the internet, never the LAN.
  networking.firewall.extraCommands = ''
    iptables -A OUTPUT -d 192.168.0.0/16 -j REJECT
    iptables -A OUTPUT -d 10.0.0.0/8 -j REJECT
  '';

  # No fleet identity key on a machine that runs untrusted code.
  fleet.deployIdentity = false;

  environment.systemPackages = with pkgs; [ git gcc python3 ];

  system.stateVersion = "25.05";
}
