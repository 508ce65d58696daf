# Stand-in for nixos/modules/system/boot/initrd-ssh.nix (nixpkgs
# @001dade9d8f91ab6c2a3ed8c830b87d8c1b8f99e, OpenSSH era; /tmp/research/src/initrd-ssh.nix).
# All its options, with their types and defaults (L27-L134):
#   enable (bool, false), port (port, 22), shell (nullOr str, null), hostKeys (listOf (either str
#   path), []), ignoreEmptyHostKeys (bool, false), authorizedKeys (listOf str, default
#   config.users.users.root.openssh.authorizedKeys.keys), authorizedKeyFiles (listOf path, default
#   ...keyFiles), extraConfig (lines, "").
# What we rely on:
#   L16-20 `(initrd.network.enable || initrd.systemd.network.enable) && cfg.enable` is when it does
#     anything at all (otherwise: no sshd, no assertion; eval-node.nix reports "INACTIVE");
#   L57 hostKeys' `apply` copies a Nix PATH into the world-readable store (eval-node.nix rejects
#     path host keys; the apply itself is not modelled), a STRING stays a path on the machine;
#   L233 / L238 the assertions "at least one authorized key" and "pre-generate the host keys";
#   L247 the warning when `shell` is set under systemd stage 1;
#   L316 `boot.initrd.secrets = listToAttrs (map (path: nameValuePair (initrdKeyPath path) path) cfg.hostKeys);`
#     (initrdKeyPath: a string stays itself), checked by stage-1.nix's initrd-secrets assertion.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  option = type: default: mkOption { inherit type default; };
  cfg = config.boot.initrd.network.ssh;
  initrd = config.boot.initrd;
  keyPath = path: if lib.isString path then path else "/etc/ssh/${baseNameOf path}";
in
{
  options.boot.initrd.network.ssh = {
    enable = option types.bool false;
    port = option types.port 22;
    shell = option (types.nullOr types.str) null;
    hostKeys = option (types.listOf (types.either types.str types.path)) [ ];
    ignoreEmptyHostKeys = option types.bool false;
    authorizedKeys = option (types.listOf types.str) config.users.users.root.openssh.authorizedKeys.keys;
    authorizedKeyFiles = option (types.listOf types.path) config.users.users.root.openssh.authorizedKeys.keyFiles;
    extraConfig = option types.lines "";
  };

  config = lib.mkIf ((initrd.network.enable || initrd.systemd.network.enable) && cfg.enable) {
    assertions = [
      {
        assertion = cfg.authorizedKeys != [ ] || cfg.authorizedKeyFiles != [ ];
        message = "You should specify at least one authorized key for initrd SSH";
      }
      {
        assertion = cfg.hostKeys != [ ] || cfg.ignoreEmptyHostKeys;
        message = "You must now pre-generate the host keys for initrd SSH. See the boot.initrd.network.ssh.hostKeys documentation for instructions.";
      }
    ];
    warnings = lib.optional (initrd.systemd.enable && cfg.shell != null)
      "Please set 'boot.initrd.systemd.users.root.shell' instead of 'boot.initrd.network.ssh.shell'";
    boot.initrd.secrets = lib.listToAttrs (map (p: lib.nameValuePair (keyPath p) p) cfg.hostKeys);
  };
}
