# The fleet: every machine, in one file. `pve check` validates it; `pve render`
# writes vms/tofu/config.tf.json, secrets/.sops.yaml and vms/known_hosts from it.
# `pve new` adds a VM (its folder copied from hosts/vm_base/);
# `pve config set _proxmox.KEY VALUE` changes the settings below.
{
  _proxmox = {
    host = {{ host }}; # API + SSH address of the Proxmox host
    node = {{ node }}; # default node
    defaultStorage = {{ storage }};
    templateVmid = {{ template_vmid }}; # NixOS template: SeaBIOS, virtio0, GRUB
  };

  _sops = {
    # Recipients that can always decrypt every secret.
    admins = {
      {{ admin_name }} = {{ admin_recipient }};
    };
  };
}
