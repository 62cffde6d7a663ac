# Home Manager configuration for the VM's admin user.
{ ... }:
{
  programs.git.enable = true;
  home.stateVersion = "25.05";
}
