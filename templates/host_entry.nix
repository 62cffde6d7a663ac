{
  configurationFile = {{ configuration_file }};
  homeFile = {{ home_file }};
  hostname = {{ hostname }};
{%- if let Some(alias) = ssh_alias %}
  sshAlias = {{ alias }};
{%- endif %}
{%- if let Some(keys) = authorized_keys %}
  authorizedKeys = {{ keys }};
{%- endif %}
{%- for (key, value) in extra %}
  {{ key }} = {{ value }};
{%- endfor %}
{%- if !proxmox.is_empty() %}
  proxmox = {
{%- for (key, value) in proxmox %}
    {{ key }} = {{ value }};
{%- endfor %}
  };
{%- endif %}
}
