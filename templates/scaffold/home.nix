{%- if base -%}
# vm_base: copied to hosts/NAME/home.nix with every @name@ replaced by the
# vm_base: host's name (see configuration.nix).
{% endif -%}
# {{ name }}: Home Manager configuration for the admin user, created by
# `pve new` or `pve scaffold`.
{ ... }:
{
  programs.git.enable = true;
  home.stateVersion = "{{ state_version }}";
}
