# nixos/modules/config/users-groups.nix, the parts the generated files and initrd-ssh.nix use.
#
# users.users.<name>.openssh.authorizedKeys.{keys,keyFiles} (declared by
# services/networking/ssh/sshd.nix into the user submodule) are what
# boot.initrd.network.ssh.authorizedKeys / authorizedKeyFiles default to. Modelled as
#   keys     = mkOption { type = types.listOf types.singleLineStr; default = [ ]; };
#   keyFiles = mkOption { type = types.listOf types.path; default = [ ]; };
# (types as in nixpkgs; not re-read from a stored copy for this tool). All other user options
# go to a freeform attribute set here (upstream the user submodule is not freeform).
# users-groups.nix defines root with uid = ids.uids.root (0) and group = "root".
#
# boot.initrd.systemd.users (copy find_string id 93993808):
#   type = types.attrsOf (types.submodule ({ name, ... }: {
#     options.uid = mkOption { type = types.int; default = cfg.users.${name}.uid; };
#     options.group = mkOption { type = types.singleLineStr; default = cfg.users.${name}.group; };
#     options.shell = mkOption { type = types.passwdEntry types.path;
#       default = "${pkgs.shadow}/bin/nologin"; }; }));
#   boot.initrd.systemd.groups: attrsOf (submodule { options.gid = mkOption { type = types.int; ... }; })
# `types.path` accepts any string starting with "/", so the shell must be an absolute path
# string (without ":" or newline: passwdEntry).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  freeform = import ../../lib/freeform.nix { inherit lib; };
  cfg = config.users;
in
{
  options.users.users = mkOption {
    default = { };
    type = types.attrsOf (
      types.submodule {
        freeformType = freeform.type;
        options = {
          uid = mkOption {
            type = types.nullOr types.int;
            default = null;
          };
          group = mkOption {
            type = types.str;
            default = "";
          };
          openssh.authorizedKeys = {
            keys = mkOption {
              type = types.listOf types.singleLineStr;
              default = [ ];
            };
            keyFiles = mkOption {
              type = types.listOf types.path;
              default = [ ];
            };
          };
        };
      }
    );
  };

  options.boot.initrd.systemd.users = mkOption {
    default = { };
    type = types.attrsOf (
      types.submodule (
        { name, ... }:
        {
          options.uid = mkOption {
            type = types.int;
            default = cfg.users.${name}.uid;
          };
          options.group = mkOption {
            type = types.singleLineStr;
            default = cfg.users.${name}.group;
          };
          options.shell = mkOption {
            type = types.passwdEntry types.path;
            default = "${pkgs.shadow}/bin/nologin";
          };
        }
      )
    );
  };

  options.boot.initrd.systemd.groups = mkOption {
    default = { };
    type = types.attrsOf (
      types.submodule {
        options.gid = mkOption { type = types.int; };
      }
    );
  };

  config.users.users.root = {
    uid = 0;
    group = "root";
  };
}
