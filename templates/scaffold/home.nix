# {{ name }}: Home Manager configuration for the VM's admin user, created by
# `pve scaffold {{ name }}`.
{ ... }:
{
  programs.git.enable = true;
  home.stateVersion = "{{ state_version }}";
}
